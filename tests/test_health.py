"""/healthz, /readyz and /metrics on real Daphne processes: readiness follows the database going
away, and every shard of a sharded channel layer (three hosts, a 3-master cluster) going away;
liveness does not; metrics count live connections by route."""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import websockets

from tests.servers import LiveServer, PostgresServer, RedisCluster


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def wait_for_status(url: str, status: int, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    answer: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        answer = get(url)
        if answer[0] == status:
            return json.loads(answer[1])
        time.sleep(0.2)
    raise AssertionError(f"{url} never answered {status}; last answer {answer}")


def test_healthz_answers_ok_without_touching_dependencies(live_server):
    status, body = get(live_server.url + "/healthz")
    assert status == 200
    assert json.loads(body) == {"status": "ok"}


def test_readyz_reports_database_and_channel_layer_ok(live_server):
    status, body = get(live_server.url + "/readyz")
    assert status == 200, body
    assert json.loads(body) == {
        "status": "ready",
        "checks": {"database": "ok", "channel_layer": "ok"},
    }


def test_readyz_fails_while_postgres_is_down_and_liveness_does_not(live_server):
    # Readiness needs no tables, so this server skips migrations on its own throwaway cluster.
    # (Redis going away is covered in test_faults, in the middle of a chat.)
    postgres = PostgresServer()
    server = LiveServer(
        env={**live_server.env, "DATABASE_URL": postgres.url},
        directory=Path(tempfile.mkdtemp(prefix="sb-ready-")),
    )
    try:
        postgres.start()
        server.start_daphne()
        wait_for_status(server.url + "/readyz", 200)

        postgres.stop()
        answer = wait_for_status(server.url + "/readyz", 503)
        assert answer["checks"]["channel_layer"] == "ok"
        assert answer["checks"]["database"] != "ok"
        assert get(server.url + "/healthz")[0] == 200
    finally:
        server.stop()
        postgres.cleanup()
        shutil.rmtree(server.directory, ignore_errors=True)


NOT_READY = {"status": "unavailable", "checks": {"database": "ok", "channel_layer": "failing"}}
READY = {"status": "ready", "checks": {"database": "ok", "channel_layer": "ok"}}


def assert_every_answer(url: str, status: int, body: dict, times: int = 8) -> None:
    """``times`` answers in a row are ``status`` with exactly ``body``: a check that covered only
    some shards would answer differently now and then (the round trip's group is random)."""
    for _ in range(times):
        answer = get(url)
        assert answer[0] == status and json.loads(answer[1]) == body, answer


def follow_a_shard_outage(server: LiveServer, stop_shard, start_shard) -> None:
    url = server.url + "/readyz"
    wait_for_status(url, 200)
    assert_every_answer(url, 200, READY)
    stop_shard()
    wait_for_status(url, 503, timeout=30)
    assert_every_answer(url, 503, NOT_READY)  # no host, port or error text for the public
    assert get(server.url + "/healthz")[0] == 200
    start_shard()
    wait_for_status(url, 200, timeout=30)
    assert_every_answer(url, 200, READY)


def test_readyz_needs_every_host_of_a_sharded_layer(
    live_server_factory, redis_server, fresh_redis_shards
):
    server = live_server_factory(
        redis_url=redis_server.url,
        SWITCHBOARD_LAYER_HOSTS=",".join(fresh_redis_shards.urls),
        SWITCHBOARD_APRS_REPLAY="",
    )
    server.start_daphne()
    victim = fresh_redis_shards.servers[1]
    follow_a_shard_outage(server, victim.stop, victim.start)
    metrics = get(server.url + "/metrics")[1]
    assert "realtime_readiness_failure{" not in metrics  # ready again: no failure left


def test_readyz_needs_every_master_of_a_cluster_layer(
    live_server_factory, redis_server, fresh_redis_cluster: RedisCluster
):
    server = live_server_factory(
        redis_url=redis_server.url,
        SWITCHBOARD_LAYER_CLUSTER=fresh_redis_cluster.url,
        SWITCHBOARD_APRS_REPLAY="",
    )
    server.start_daphne()
    follow_a_shard_outage(
        server, lambda: fresh_redis_cluster.kill(2), lambda: fresh_redis_cluster.start_node(2)
    )


def metric_value(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    prefix = f"{name}{{{wanted}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line[len(prefix) :])
    return 0.0


def test_metrics_count_open_websockets_by_route_and_layer_drops(live_server):
    session = live_server.create_user("metrics-reader")
    route = {"route": "ws/notifications/", "type": "websocket"}

    async def scenario() -> tuple[float, float]:
        async with websockets.connect(
            live_server.ws_url + "/ws/notifications/",
            origin=live_server.url,
            additional_headers={"Cookie": f"sessionid={session}"},
        ) as socket:
            await socket.recv()  # the unread count: the connection is in
            during = get(live_server.url + "/metrics")[1]
        await asyncio.sleep(0.3)
        after = get(live_server.url + "/metrics")[1]
        return metric_value(during, "realtime_open_connections", **route), metric_value(
            after, "realtime_open_connections", **route
        )

    before = metric_value(
        get(live_server.url + "/metrics")[1], "realtime_open_connections", **route
    )
    during, after = asyncio.run(scenario())
    assert during == before + 1
    assert after == before

    text = get(live_server.url + "/metrics")[1]
    assert "# TYPE realtime_layer_dropped_total counter" in text
    assert "realtime_layer_dropped_total 0.0" in text
    assert metric_value(text, "realtime_messages_routed_total", type="websocket", direction="in")
    assert "# TYPE realtime_long_polls_waiting gauge" in text
