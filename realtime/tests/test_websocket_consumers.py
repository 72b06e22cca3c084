"""The websocket consumers, as a specification: handshake, frames, close codes, groups, JSON."""

from __future__ import annotations

from typing import Any

import pytest

from realtime.exceptions import AcceptConnection, DenyConnection
from realtime.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
    WebSocketState,
)
from realtime.layers import get_channel_layer
from realtime.testing import WebsocketCommunicator

MEMORY_LAYER = {"default": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def layer(settings: Any) -> Any:
    """A fresh in-memory default layer for each test."""
    settings.CHANNEL_LAYERS = MEMORY_LAYER
    return get_channel_layer()


class AsyncEcho(AsyncWebsocketConsumer):
    """Echoes frames; says what it saw on disconnect to the "observers" group."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is not None:
            await self.send(text_data=text_data)
        else:
            await self.send(bytes_data=bytes_data)

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_send("observers", {"type": "gone", "code": code})


class SyncEcho(WebsocketConsumer):
    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is not None:
            self.send(text_data=text_data)
        else:
            self.send(bytes_data=bytes_data)


async def observer(layer: Any) -> str:
    channel = await layer.new_channel()
    await layer.group_add("observers", channel)
    return channel


# Handshake ---------------------------------------------------------------------------------------


async def test_default_connect_accepts_the_socket() -> None:
    communicator = WebsocketCommunicator(AsyncEcho.as_asgi(), "/ws/")
    assert await communicator.connect() == (True, None)
    await communicator.disconnect()


async def test_accept_chooses_a_subprotocol() -> None:
    class Versioned(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept(subprotocol=self.scope["subprotocols"][-1])

    communicator = WebsocketCommunicator(Versioned.as_asgi(), "/ws/", subprotocols=["v1", "v2"])
    assert await communicator.connect() == (True, "v2")
    await communicator.disconnect()


async def test_accept_sends_response_headers() -> None:
    class WithHeaders(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept(headers=[(b"x-server", b"switchboard")])

    communicator = WebsocketCommunicator(WithHeaders.as_asgi(), "/ws/")
    await communicator.connect()
    assert communicator.response_headers == [(b"x-server", b"switchboard")]
    await communicator.disconnect()


async def test_close_in_connect_refuses_the_socket_with_its_code() -> None:
    class Refuser(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.close(code=4403)

    communicator = WebsocketCommunicator(Refuser.as_asgi(), "/ws/")
    assert await communicator.connect() == (False, 4403)


async def test_deny_connection_refuses_the_socket() -> None:
    class Denier(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            raise DenyConnection()

    communicator = WebsocketCommunicator(Denier.as_asgi(), "/ws/")
    connected, code = await communicator.connect()
    assert connected is False and code == 1000


async def test_accept_connection_accepts_the_socket() -> None:
    class Acceptor(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            raise AcceptConnection()

    communicator = WebsocketCommunicator(Acceptor.as_asgi(), "/ws/")
    assert await communicator.connect() == (True, None)
    await communicator.disconnect()


async def test_accepting_twice_raises_runtime_error_naming_the_state() -> None:
    class DoubleAccept(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            await self.accept()

    communicator = WebsocketCommunicator(DoubleAccept.as_asgi(), "/ws/")
    await communicator.send_input({"type": "websocket.connect"})
    with pytest.raises(RuntimeError, match=r"Expected a connecting socket.*connected"):
        await communicator.wait()


async def test_sending_before_accept_raises_runtime_error_saying_so() -> None:
    class Eager(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.send(text_data="too early")

    communicator = WebsocketCommunicator(Eager.as_asgi(), "/ws/")
    await communicator.send_input({"type": "websocket.connect"})
    with pytest.raises(RuntimeError, match=r"still connecting: call accept\(\) first"):
        await communicator.wait()


async def test_consumer_sees_path_and_query_string_in_scope() -> None:
    class ScopeReporter(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            await self.send(text_data=f"{self.scope['path']}|{self.scope['query_string'].decode()}")

    communicator = WebsocketCommunicator(ScopeReporter.as_asgi(), "/ws/chat/?last=12")
    await communicator.connect()
    assert await communicator.receive_from() == "/ws/chat/|last=12"
    await communicator.disconnect()


# Frames ------------------------------------------------------------------------------------------


async def test_text_frames_reach_receive_as_text_data() -> None:
    communicator = WebsocketCommunicator(AsyncEcho.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(text_data="hello")
    assert await communicator.receive_from() == "hello"
    await communicator.disconnect()


async def test_binary_frames_reach_receive_as_bytes_data() -> None:
    communicator = WebsocketCommunicator(AsyncEcho.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(bytes_data=b"\x00\x01")
    assert await communicator.receive_from() == b"\x00\x01"
    await communicator.disconnect()


async def test_send_without_data_raises_value_error() -> None:
    class Empty(AsyncWebsocketConsumer):
        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
            await self.send()

    communicator = WebsocketCommunicator(Empty.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(text_data="x")
    with pytest.raises(ValueError, match="one of bytes_data or text_data"):
        await communicator.wait()


async def test_send_with_close_sends_then_closes_with_the_code() -> None:
    class Goodbye(AsyncWebsocketConsumer):
        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
            await self.send(text_data="bye", close=4000)

    communicator = WebsocketCommunicator(Goodbye.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(text_data="x")
    assert await communicator.receive_from() == "bye"
    assert await communicator.receive_output() == {"type": "websocket.close", "code": 4000}


async def test_close_sends_code_and_reason() -> None:
    class Closer(AsyncWebsocketConsumer):
        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
            await self.close(code=4009, reason="frame too large")

    communicator = WebsocketCommunicator(Closer.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(text_data="x")
    assert await communicator.receive_output() == {
        "type": "websocket.close",
        "code": 4009,
        "reason": "frame too large",
    }


async def test_sends_after_close_are_dropped() -> None:
    class LateSender(AsyncWebsocketConsumer):
        async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
            await self.close(code=4000)
            await self.send(text_data="too late")
            assert self.websocket_state is WebSocketState.CLOSED

    communicator = WebsocketCommunicator(LateSender.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(text_data="x")
    assert (await communicator.receive_output())["type"] == "websocket.close"
    assert await communicator.receive_nothing()


# Disconnect and groups ---------------------------------------------------------------------------


async def test_disconnect_receives_the_close_code_and_ends_the_consumer(layer: Any) -> None:
    watcher = await observer(layer)
    communicator = WebsocketCommunicator(AsyncEcho.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.disconnect(code=1001)
    assert await layer.receive(watcher) == {"type": "gone", "code": 1001}
    assert communicator.future.done()


async def test_groups_are_joined_on_connect(layer: Any) -> None:
    class RoomMember(AsyncWebsocketConsumer):
        groups = ["room.lobby"]

        async def chat_message(self, event: Any) -> None:
            await self.send(text_data=event["text"])

    communicator = WebsocketCommunicator(RoomMember.as_asgi(), "/ws/")
    await communicator.connect()
    await layer.group_send("room.lobby", {"type": "chat.message", "text": "hi all"})
    assert await communicator.receive_from() == "hi all"
    await communicator.disconnect()


async def test_groups_are_left_on_disconnect(layer: Any) -> None:
    class RoomMember(AsyncWebsocketConsumer):
        groups = ["room.lobby"]

        async def connect(self) -> None:
            await self.accept()
            await self.send(text_data=self.channel_name)

    communicator = WebsocketCommunicator(RoomMember.as_asgi(), "/ws/")
    await communicator.connect()
    channel = await communicator.receive_from()
    await communicator.disconnect()
    listener = await layer.new_channel()
    await layer.group_add("room.lobby", listener)
    await layer.group_send("room.lobby", {"type": "chat.message", "text": "anyone?"})
    assert await layer.receive(listener) == {"type": "chat.message", "text": "anyone?"}
    await layer.send(channel, {"type": "marker"})
    # The departed consumer's channel holds the marker only: the group message never reached it.
    assert await layer.receive(channel) == {"type": "marker"}


async def test_groups_joined_before_a_refused_connect_are_left(layer: Any) -> None:
    class Refused(AsyncWebsocketConsumer):
        groups = ["room.lobby"]

        async def connect(self) -> None:
            await self.channel_layer.group_send(
                "observers", {"type": "me", "channel": self.channel_name}
            )
            await self.close(code=4401)

    watcher = await observer(layer)
    communicator = WebsocketCommunicator(Refused.as_asgi(), "/ws/")
    assert await communicator.connect() == (False, 4401)
    channel = (await layer.receive(watcher))["channel"]
    await communicator.send_input({"type": "websocket.disconnect", "code": 4401})
    await communicator.wait()
    await layer.group_send("room.lobby", {"type": "chat.message", "text": "x"})
    await layer.send(channel, {"type": "marker"})
    assert await layer.receive(channel) == {"type": "marker"}


async def test_group_events_are_dispatched_to_handlers(layer: Any) -> None:
    class Notified(AsyncWebsocketConsumer):
        groups = ["alerts"]

        async def alert_raised(self, event: Any) -> None:
            await self.send(text_data=f"alert: {event['level']}")

    communicator = WebsocketCommunicator(Notified.as_asgi(), "/ws/")
    await communicator.connect()
    await layer.group_send("alerts", {"type": "alert.raised", "level": "high"})
    assert await communicator.receive_from() == "alert: high"
    await communicator.disconnect()


# JSON --------------------------------------------------------------------------------------------


class AsyncJsonEcho(AsyncJsonWebsocketConsumer):
    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json({"echo": content})


async def test_json_consumer_decodes_frames_and_encodes_replies() -> None:
    communicator = WebsocketCommunicator(AsyncJsonEcho.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_json_to({"type": "say", "text": "hi"})
    assert await communicator.receive_json_from() == {"echo": {"type": "say", "text": "hi"}}
    await communicator.disconnect()


async def test_json_consumer_refuses_binary_frames() -> None:
    communicator = WebsocketCommunicator(AsyncJsonEcho.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_to(bytes_data=b"{}")
    with pytest.raises(ValueError, match="No text section"):
        await communicator.wait()


async def test_json_consumer_encoding_can_be_overridden() -> None:
    class Sorted(AsyncJsonEcho):
        @classmethod
        async def encode_json(cls, content: Any) -> str:
            import json

            return json.dumps(content, sort_keys=True, separators=(",", ":"))

    communicator = WebsocketCommunicator(Sorted.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_json_to({"b": 1, "a": 2})
    assert await communicator.receive_from() == '{"echo":{"a":2,"b":1}}'
    await communicator.disconnect()


# The synchronous consumers (handlers run in a thread and may use the ORM) ----------------------


@pytest.mark.django_db
async def test_sync_consumer_echoes_text_and_bytes() -> None:
    communicator = WebsocketCommunicator(SyncEcho.as_asgi(), "/ws/")
    assert await communicator.connect() == (True, None)
    await communicator.send_to(text_data="hello")
    assert await communicator.receive_from() == "hello"
    await communicator.send_to(bytes_data=b"\xff")
    assert await communicator.receive_from() == b"\xff"
    await communicator.disconnect()


@pytest.mark.django_db
async def test_sync_consumer_deny_connection_refuses_the_socket() -> None:
    class Denier(WebsocketConsumer):
        def connect(self) -> None:
            raise DenyConnection()

    communicator = WebsocketCommunicator(Denier.as_asgi(), "/ws/")
    assert (await communicator.connect())[0] is False


@pytest.mark.django_db
async def test_sync_consumer_joins_groups_and_handles_group_events(layer: Any) -> None:
    class RoomMember(WebsocketConsumer):
        groups = ["room.lobby"]

        def chat_message(self, event: Any) -> None:
            self.send(text_data=event["text"])

    communicator = WebsocketCommunicator(RoomMember.as_asgi(), "/ws/")
    await communicator.connect()
    await layer.group_send("room.lobby", {"type": "chat.message", "text": "hi all"})
    assert await communicator.receive_from() == "hi all"
    await communicator.disconnect()


@pytest.mark.django_db
async def test_sync_consumer_close_in_connect_refuses_with_code() -> None:
    class Refuser(WebsocketConsumer):
        def connect(self) -> None:
            self.close(code=4401)

    communicator = WebsocketCommunicator(Refuser.as_asgi(), "/ws/")
    assert await communicator.connect() == (False, 4401)


@pytest.mark.django_db
async def test_sync_json_consumer_round_trips_json() -> None:
    class JsonEcho(JsonWebsocketConsumer):
        def receive_json(self, content: Any, **kwargs: Any) -> None:
            self.send_json({"echo": content})

    communicator = WebsocketCommunicator(JsonEcho.as_asgi(), "/ws/")
    await communicator.connect()
    await communicator.send_json_to([1, 2, 3])
    assert await communicator.receive_json_from() == {"echo": [1, 2, 3]}
    await communicator.disconnect()
