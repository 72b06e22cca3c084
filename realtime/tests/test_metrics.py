"""ConnectionMetricsMiddleware: open connections by route pattern, messages routed, long-polls
waiting, and their Prometheus export."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from django.urls import path
from prometheus_client import CollectorRegistry, generate_latest

from realtime.consumer import AsyncConsumer
from realtime.generic.websocket import AsyncWebsocketConsumer
from realtime.metrics import (
    UNMATCHED_ROUTE,
    ConnectionCounters,
    ConnectionMetricsMiddleware,
    MetricsCollector,
)
from realtime.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter
from realtime.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data=None, bytes_data=None):
        await self.send(text_data=text_data)


class HeldPoll:
    """An HTTP app that answers only when `release` is set, like a long-poll."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def __call__(self, scope, receive, send):
        await receive()
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})


class Jobs(AsyncConsumer):
    async def job_run(self, message):
        pass


def build(counters: ConnectionCounters, poll: HeldPoll) -> ConnectionMetricsMiddleware:
    return ConnectionMetricsMiddleware(
        ProtocolTypeRouter(
            {
                "websocket": URLRouter([path("ws/rooms/<slug:room>/", Echo.as_asgi())]),
                "http": URLRouter([path("poll/", poll)]),
                "channel": ChannelNameRouter({"jobs": Jobs.as_asgi()}),
            }
        ),
        counters=counters,
    )


async def test_open_websockets_are_counted_by_route_pattern_not_by_path():
    counters = ConnectionCounters()
    application = build(counters, HeldPoll())
    first = WebsocketCommunicator(application, "/ws/rooms/lobby/")
    second = WebsocketCommunicator(application, "/ws/rooms/kitchen/")
    assert (await first.connect())[0] and (await second.connect())[0]
    assert dict(counters.open_connections) == {("websocket", "ws/rooms/<slug:room>/"): 2}

    await first.send_to(text_data="hi")
    assert await first.receive_from() == "hi"
    await first.disconnect()
    await second.disconnect()
    assert counters.open_connections[("websocket", "ws/rooms/<slug:room>/")] == 0
    assert counters.connections_total[("websocket", "ws/rooms/<slug:room>/")] == 2
    # connect x2, receive, disconnect x2 in; accept x2, the echo out.
    assert counters.messages_in["websocket"] == 5
    assert counters.messages_out["websocket"] == 3


async def test_a_path_no_route_matches_is_labelled_unmatched():
    counters = ConnectionCounters()
    application = build(counters, HeldPoll())
    communicator = WebsocketCommunicator(application, "/ws/nowhere/")
    # The router refuses the path; the server turns that into a close.
    with pytest.raises(ValueError, match="No route found"):
        await communicator.connect()
    assert counters.connections_total[("websocket", UNMATCHED_ROUTE)] == 1
    assert counters.open_connections[("websocket", UNMATCHED_ROUTE)] == 0


async def test_long_poll_counts_as_waiting_until_the_response_starts():
    counters = ConnectionCounters()
    poll = HeldPoll()
    communicator = HttpCommunicator(build(counters, poll), "GET", "/poll/")
    await communicator.send_request()
    await asyncio.sleep(0.05)
    assert counters.long_polls_waiting["poll/"] == 1

    poll.release.set()
    response = await communicator.get_response()
    assert response["status"] == 200
    assert counters.long_polls_waiting["poll/"] == 0
    assert counters.open_connections[("http", "poll/")] == 0


async def test_worker_channel_scopes_are_labelled_by_channel_name():
    counters = ConnectionCounters()
    communicator = ApplicationCommunicator(
        build(counters, HeldPoll()), {"type": "channel", "channel": "jobs"}
    )
    await communicator.send_input({"type": "job.run"})
    await communicator.receive_nothing()
    assert counters.open_connections[("channel", "jobs")] == 1
    assert counters.messages_in["channel"] == 1
    communicator.future.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await communicator.future
    assert counters.open_connections[("channel", "jobs")] == 0


async def test_collector_exports_counters_in_prometheus_text_format():
    counters = ConnectionCounters()
    application = build(counters, HeldPoll())
    socket = WebsocketCommunicator(application, "/ws/rooms/lobby/")
    await socket.connect()
    registry = CollectorRegistry()
    registry.register(MetricsCollector(counters))
    text = generate_latest(registry).decode()
    assert 'realtime_open_connections{route="ws/rooms/<slug:room>/",type="websocket"} 1.0' in text
    assert 'realtime_messages_routed_total{direction="in",type="websocket"} 1.0' in text
    assert "# TYPE realtime_long_polls_waiting gauge" in text
    await socket.disconnect()


class PassThrough:
    """A middleware that keeps the wrapped app in `inner`, as realtime's middleware do."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        return await self.inner(scope, receive, send)


async def test_a_route_into_a_wrapped_nested_router_is_labelled_by_its_prefix():
    counters = ConnectionCounters()
    nested = PassThrough(URLRouter([path("deep/<int:n>/", Echo.as_asgi())]))
    application = ConnectionMetricsMiddleware(
        ProtocolTypeRouter({"websocket": URLRouter([path("ws/nested/", nested)])}),
        counters=counters,
    )
    communicator = WebsocketCommunicator(application, "/ws/nested/deep/7/")
    assert (await communicator.connect())[0]
    assert dict(counters.open_connections) == {("websocket", "ws/nested/"): 1}
    await communicator.disconnect()
