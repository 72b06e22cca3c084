"""Endpoints for load balancers, orchestrators and Prometheus.

    GET /healthz   200 {"status": "ok"}: the process is up and serving (no dependency is touched)
    GET /readyz    200 {"status": "ready", "checks": {"database": "ok", "channel_layer": "ok"}}
                   503 {"status": "unavailable", "checks": {"database": "ok",
                        "channel_layer": "failing"}}
    GET /metrics   Prometheus text format: realtime_open_connections, realtime_connections_total,
                   realtime_messages_routed_total, realtime_long_polls_waiting (realtime.metrics),
                   realtime_layer_dropped_total (the channel layer's stats()["dropped"]),
                   realtime_readiness_failure{check, error} (why the last /readyz failed),
                   chat_catch_up_events_total (room events chat sockets had to read from the
                   database: the layer lost or reordered them)

/readyz is public (load balancers call it from wherever they run), so it says only which check
fails; what went wrong (an exception's text can name hosts, ports and users) is logged and shown
in /metrics, which nginx keeps inside the deployment:

    realtime_readiness_failure{check="channel_layer",error="TimeoutError: no answer within 2.0s"} 1

Readiness checks the database with `SELECT 1` and the channel layer with a group_send/receive
round trip on a fresh channel, each within READINESS_TIMEOUT seconds, so a load balancer stops
sending traffic to a process whose Redis or PostgreSQL went away, and sends it again once they are
back. Switchboard's Redis layer on several servers (SWITCHBOARD_LAYER_HOSTS) or a Redis Cluster
(SWITCHBOARD_LAYER_CLUSTER) is ready only when every one of its servers, or every master that owns
slots, answers a PING and this process's pub/sub connection to each server it listens to is up
(`RedisChannelLayer.check_servers()`): each owns part of the groups and queues, so one that is
away fails part of the traffic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from realtime.layers import get_channel_layer
from realtime.metrics import MetricsCollector

logger = logging.getLogger(__name__)

#: Seconds each readiness check may take before it counts as failed.
READINESS_TIMEOUT = 2.0
READINESS_MESSAGE_TYPE = "health.ping"


@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up: answers without touching the database or the channel layer."""
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # This runs in a throwaway thread; leave no connection behind in it.
        connection.close()


async def _check_channel_layer() -> None:
    # A group round trip: with a Redis layer, group_send is a PUBLISH that must come back through
    # this process's subscription, so it proves Redis is reachable (a send to a process-local
    # channel may never leave the process).
    layer = get_channel_layer()
    if layer is None:
        raise RuntimeError("no channel layer is configured")
    # The round trip's group lives on one shard; a sharded layer (several hosts, a cluster) also
    # needs every other one: a group or queue on a shard that is away fails. Asked first, as it
    # fails fast where the round trip would wait for its timeout.
    check_servers = getattr(layer, "check_servers", None)
    if check_servers is not None:
        await check_servers()
    channel = await layer.new_channel("health")
    token = uuid.uuid4().hex
    group = f"health.{token}"
    await layer.group_add(group, channel)
    try:
        await layer.group_send(group, {"type": READINESS_MESSAGE_TYPE, "token": token})
        message = await layer.receive(channel)
    finally:
        with contextlib.suppress(Exception):
            await layer.group_discard(group, channel)
    if message.get("token") != token:
        raise RuntimeError(f"round trip returned {message!r}")


#: What /readyz says of a failing check; the reason goes to the log and /metrics only.
FAILING = "failing"
#: Longest error text kept for /metrics.
MAX_ERROR_TEXT = 200
#: The last readiness failure of each check (check -> "ErrorType: text"), for /metrics.
last_failures: dict[str, str] = {}


async def _run_check(name: str, check: Any) -> str:
    try:
        await asyncio.wait_for(check(), READINESS_TIMEOUT)
    except TimeoutError:
        reason = f"TimeoutError: no answer within {READINESS_TIMEOUT}s"
    except Exception as error:  # a readiness probe reports every failure, it never raises
        reason = f"{type(error).__name__}: {error}"
    else:
        last_failures.pop(name, None)
        return "ok"
    logger.warning("Readiness check %s failed: %s", name, reason)
    last_failures[name] = reason[:MAX_ERROR_TEXT]
    return FAILING


@never_cache
@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    """Ready for traffic: the database answers and the channel layer makes a round trip."""
    database, channel_layer = await asyncio.gather(
        _run_check("database", sync_to_async(_check_database, thread_sensitive=False)),
        _run_check("channel_layer", _check_channel_layer),
    )
    checks = {"database": database, "channel_layer": channel_layer}
    ready = all(result == "ok" for result in checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


class ReadinessCollector:
    """Exports why the last /readyz failed, per failing check (nothing while all pass)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        failure = GaugeMetricFamily(
            "realtime_readiness_failure",
            "1 for each readiness check whose last run failed, with the error.",
            labels=["check", "error"],
        )
        for name, reason in sorted(last_failures.items()):
            failure.add_metric([name, reason], 1)
        yield failure


class LayerStatsCollector:
    """Exports the default channel layer's `stats()["dropped"]` at scrape time."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        dropped = CounterMetricFamily(
            "realtime_layer_dropped",
            "Messages the channel layer dropped because a channel was full.",
        )
        layer = get_channel_layer()
        stats = getattr(layer, "stats", None)
        if callable(stats):
            dropped.add_metric([], stats().get("dropped", 0))
        yield dropped


class ChatCatchUpCollector:
    """Exports how many room events this process's chat sockets got from the database because
    the channel layer did not bring them (chat.delivery.catch_up_reader)."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        from chat.delivery import catch_up_reader

        caught_up = CounterMetricFamily(
            "chat_catch_up_events",
            "Room events chat sockets got from the database instead of the channel layer.",
        )
        caught_up.add_metric([], catch_up_reader.events_caught_up)
        yield caught_up


_registered = False


def _register_collectors() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(MetricsCollector())
        REGISTRY.register(LayerStatsCollector())
        REGISTRY.register(ReadinessCollector())
        REGISTRY.register(ChatCatchUpCollector())
        _registered = True


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """This process's metrics in the Prometheus text exposition format."""
    _register_collectors()
    return HttpResponse(generate_latest(REGISTRY), content_type=CONTENT_TYPE_LATEST)
