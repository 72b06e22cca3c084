"""Frames and closes that reach a WebSocket consumer through the channel layer (Channels 1.x's
`Group("chat").send({"text": "hi"})`): a plain AsyncConsumer or SyncConsumer passes a clean copy
to the client only while its socket is accepted and open, and no consumer passes on a malformed
one. The same over a real Daphne socket, with a raw client, is in test_core_over_daphne.py."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from realtime.consumer import AsyncConsumer, SyncConsumer
from realtime.generic.websocket import AsyncWebsocketConsumer
from realtime.layers import get_channel_layer
from realtime.testing import ApplicationCommunicator
from realtime.tests.helpers import wait_until
from realtime.websocket_state import client_event

MALFORMED = [
    {"type": "websocket.send"},
    {"type": "websocket.send", "text": 5},
    {"type": "websocket.send", "bytes": "not bytes"},
    {"type": "websocket.send", "text": "a", "bytes": b"b"},
    {"type": "websocket.close", "code": "4000"},
    {"type": "websocket.close", "code": 1006},
    {"type": "websocket.close", "code": True},
    {"type": "websocket.close", "reason": 7},
]


@pytest.fixture
def layer(settings: Any) -> Any:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"}
    }
    return get_channel_layer()


class Plain(AsyncConsumer):
    """A WebSocket served with raw ASGI events: accepted when the layer says `app.accept`, echoes
    client text, closes itself when the client says "bye". Its channel names go in `channels`."""

    channels: ClassVar[list[str]] = []

    async def websocket_connect(self, message: Any) -> None:
        Plain.channels.append(self.channel_name)

    async def app_accept(self, message: Any) -> None:
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, message: Any) -> None:
        if message.get("text") == "bye":
            await self.send({"type": "websocket.close", "code": 4000})
        else:
            await self.send({"type": "websocket.send", "text": f"echo {message.get('text')}"})

    async def websocket_disconnect(self, message: Any) -> None:
        """Stays alive after the client left, so late layer messages still reach dispatch."""


class SyncPlain(SyncConsumer):
    channels: ClassVar[list[str]] = []

    def websocket_connect(self, message: Any) -> None:
        SyncPlain.channels.append(self.channel_name)

    def app_accept(self, message: Any) -> None:
        self.send({"type": "websocket.accept"})


async def connected(consumer: type, layer: Any, accept: bool = True) -> tuple[Any, str]:
    """A communicator whose consumer got websocket.connect (and accepted, when `accept`), and
    the consumer's channel name."""
    consumer.channels.clear()  # type: ignore[attr-defined]
    communicator = ApplicationCommunicator(consumer.as_asgi(), {"type": "websocket", "path": "/"})
    await communicator.send_input({"type": "websocket.connect"})
    await wait_until(lambda: consumer.channels)  # type: ignore[attr-defined]
    channel = consumer.channels[0]  # type: ignore[attr-defined]
    if accept:
        await layer.send(channel, {"type": "app.accept"})
        assert await communicator.receive_output() == {"type": "websocket.accept"}
    return communicator, channel


async def test_a_layer_frame_reaches_the_client_as_a_clean_event(layer: Any) -> None:
    communicator, channel = await connected(Plain, layer)
    await layer.send(channel, {"type": "websocket.send", "text": "hi", "extra": "dropped"})
    assert await communicator.receive_output() == {"type": "websocket.send", "text": "hi"}
    await layer.send(channel, {"type": "websocket.send", "bytes": b"\x00\x01"})
    assert await communicator.receive_output() == {"type": "websocket.send", "bytes": b"\x00\x01"}
    await layer.send(channel, {"type": "websocket.close", "code": 4001, "reason": "moved"})
    assert await communicator.receive_output() == {
        "type": "websocket.close",
        "code": 4001,
        "reason": "moved",
    }
    await communicator.wait(0.1)  # it never ends by itself: cancelled


async def test_a_layer_frame_before_accept_is_dropped(layer: Any) -> None:
    communicator, channel = await connected(Plain, layer, accept=False)
    await layer.send(channel, {"type": "websocket.send", "text": "too early"})
    await layer.send(channel, {"type": "app.accept"})
    await layer.send(channel, {"type": "websocket.send", "text": "in time"})
    assert await communicator.receive_output() == {"type": "websocket.accept"}
    assert await communicator.receive_output() == {"type": "websocket.send", "text": "in time"}
    await communicator.wait(0.1)  # it never ends by itself: cancelled


async def test_a_layer_close_before_accept_refuses_the_socket_once(layer: Any) -> None:
    communicator, channel = await connected(Plain, layer, accept=False)
    await layer.send(channel, {"type": "websocket.close", "code": 4003})
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4003}
    await layer.send(channel, {"type": "websocket.close", "code": 4004})
    await layer.send(channel, {"type": "app.accept"})
    await layer.send(channel, {"type": "websocket.send", "text": "after the refusal"})
    # app.accept reaches the consumer's own handler (its business); the layer's events do not.
    assert await communicator.receive_output() == {"type": "websocket.accept"}
    assert await communicator.receive_nothing(0.2)
    await communicator.wait(0.1)  # it never ends by itself: cancelled


async def test_after_the_consumer_closed_layer_events_and_client_frames_reach_nothing(
    layer: Any,
) -> None:
    communicator, channel = await connected(Plain, layer)
    await communicator.send_input({"type": "websocket.receive", "text": "bye"})
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4000}
    await layer.send(channel, {"type": "websocket.send", "text": "late"})
    await layer.send(channel, {"type": "websocket.close", "code": 4005})
    # A client that ignores the close and keeps sending: its frames are not dispatched.
    await communicator.send_input({"type": "websocket.receive", "text": "still here"})
    assert await communicator.receive_nothing(0.2)
    await communicator.wait(0.1)  # it never ends by itself: cancelled


async def test_after_the_client_left_layer_events_are_dropped(layer: Any) -> None:
    communicator, channel = await connected(Plain, layer)
    await communicator.send_input({"type": "websocket.disconnect", "code": 1001})
    await layer.send(channel, {"type": "websocket.send", "text": "nobody listens"})
    await layer.send(channel, {"type": "websocket.close"})
    assert await communicator.receive_nothing(0.2)
    await communicator.wait(0.1)  # it never ends by itself: cancelled


@pytest.mark.parametrize("message", MALFORMED, ids=repr)
async def test_a_malformed_layer_event_is_dropped_and_the_socket_stays_up(
    layer: Any, message: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    communicator, channel = await connected(Plain, layer)
    await layer.send(channel, message)
    await layer.send(channel, {"type": "websocket.send", "text": "still up"})
    assert await communicator.receive_output() == {"type": "websocket.send", "text": "still up"}
    assert "Dropped a malformed" in caplog.text
    await communicator.send_input({"type": "websocket.receive", "text": "ping"})
    assert await communicator.receive_output() == {"type": "websocket.send", "text": "echo ping"}
    await communicator.wait(0.1)  # it never ends by itself: cancelled


@pytest.mark.django_db  # a sync consumer's handlers close stale database connections
async def test_a_sync_consumer_drops_a_layer_frame_before_accept(layer: Any) -> None:
    communicator, channel = await connected(SyncPlain, layer, accept=False)
    await layer.send(channel, {"type": "websocket.send", "text": "too early"})
    await layer.send(channel, {"type": "app.accept"})
    await layer.send(channel, {"type": "websocket.send", "text": "in time", "extra": 1})
    assert await communicator.receive_output() == {"type": "websocket.accept"}
    assert await communicator.receive_output() == {"type": "websocket.send", "text": "in time"}
    await communicator.wait(0.1)  # it never ends by itself: cancelled


class Generic(AsyncWebsocketConsumer):
    groups = ["generic.listeners"]

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        await self.send(text_data=f"echo {text_data}")


@pytest.mark.parametrize("message", MALFORMED, ids=repr)
async def test_a_generic_consumer_drops_a_malformed_layer_event(
    layer: Any, message: dict[str, Any]
) -> None:
    communicator = ApplicationCommunicator(Generic.as_asgi(), {"type": "websocket", "path": "/"})
    await communicator.send_input({"type": "websocket.connect"})
    assert await communicator.receive_output() == {"type": "websocket.accept", "subprotocol": None}
    await layer.group_send("generic.listeners", message)
    await layer.group_send("generic.listeners", {"type": "websocket.send", "text": "up"})
    assert await communicator.receive_output() == {"type": "websocket.send", "text": "up"}
    await communicator.send_input({"type": "websocket.disconnect", "code": 1000})
    await communicator.wait(5)


def test_client_event_keeps_only_the_keys_the_asgi_spec_defines() -> None:
    assert client_event({"type": "websocket.send", "text": "x", "bytes": None, "to": "all"}) == {
        "type": "websocket.send",
        "text": "x",
    }
    assert client_event({"type": "websocket.send", "bytes": bytearray(b"\x01")}) == {
        "type": "websocket.send",
        "bytes": b"\x01",
    }
    assert client_event({"type": "websocket.close", "code": 1000, "reason": ""}) == {
        "type": "websocket.close",
        "code": 1000,
    }
    assert client_event({"type": "websocket.close"}) == {"type": "websocket.close"}
    for message in MALFORMED:
        assert client_event(message) is None, message


@pytest.mark.parametrize(
    "forged",
    [
        {"type": "websocket.receive", "text": "bye"},
        {"type": "websocket.disconnect", "code": 1000},
        {"type": "websocket.connect"},
        {"type": "http.request", "body": b""},
    ],
)
async def test_client_events_sent_through_the_layer_are_not_dispatched(
    layer: Any, forged: dict, caplog: Any
) -> None:
    """Only the connection speaks for the client: a `websocket.receive` (or a disconnect) put on
    the layer by anyone else reaches no handler, and the consumer keeps serving its socket."""
    communicator, channel = await connected(Plain, layer)
    await layer.send(channel, forged)
    assert await communicator.receive_nothing(0.2)  # "bye" from the client would close it
    assert "only the protocol server sends those" in caplog.text
    await communicator.send_input({"type": "websocket.receive", "text": "still here"})
    assert await communicator.receive_output() == {
        "type": "websocket.send",
        "text": "echo still here",
    }
    await communicator.wait(0.1)  # it never ends by itself: cancelled
