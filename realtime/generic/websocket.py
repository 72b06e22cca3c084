"""WebSocket consumers: connect / receive / disconnect, with groups, close codes and JSON variants.

The events between the server and a websocket consumer (ASGI):

    in   {"type": "websocket.connect"}
    out  {"type": "websocket.accept", "subprotocol": "chat.v1", "headers": [(b"x", b"y")]}
    in   {"type": "websocket.receive", "text": "hello"}          (or "bytes": b"...")
    out  {"type": "websocket.send", "text": "hello"}              (or "bytes": b"...")
    out  {"type": "websocket.close", "code": 4403, "reason": "forbidden"}
    in   {"type": "websocket.disconnect", "code": 1001}

The socket moves through `WebSocketState`: CONNECTING until accept() (or close(), which then
refuses the handshake: the browser sees HTTP 403), CONNECTED, CLOSED once the consumer has sent a
close, DISCONNECTED when the client is gone. Only a CONNECTED socket's frames reach receive():
frames that arrive after the consumer sent a close (a client may keep sending until the server
drops the connection) or before it accepted are dropped, for every consumer class. `self.groups` are joined before connect() runs and left
when the client disconnects. Raising DenyConnection in connect() refuses the socket, raising
AcceptConnection accepts it.

Differences from Django Channels, each on purpose:
- accept() on a socket that is not connecting raises RuntimeError saying what state it is in
  (Channels sends a second accept, which the server rejects later, far from the mistake).
- send() before accept() raises RuntimeError at once (Daphne would refuse the frame with "Socket
  has not been accepted"); send() after the consumer closed the socket is dropped instead of sent:
  a group event racing a close() is normal and should not crash the consumer.
- Group memberships are left however the consumer ends, not only on a clean disconnect.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from asgiref.sync import async_to_sync

from realtime.consumer import AsyncConsumer, SyncConsumer
from realtime.exceptions import AcceptConnection, DenyConnection, StopConsumer
from realtime.types import Headers, Message
from realtime.websocket_state import WebSocketState, client_event

logger = logging.getLogger(__name__)


def _accept_message(state: WebSocketState, subprotocol: str | None, headers: Any) -> Message:
    if state is not WebSocketState.CONNECTING:
        raise RuntimeError(
            f"Expected a connecting socket for accept(), but the socket is {state.value}"
        )
    message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
    if headers:
        message["headers"] = list(headers)
    return message


def _send_message(text_data: str | None, bytes_data: bytes | None) -> Message:
    if text_data is not None:
        return {"type": "websocket.send", "text": text_data}
    if bytes_data is not None:
        return {"type": "websocket.send", "bytes": bytes_data}
    raise ValueError("You must pass one of bytes_data or text_data")


def _drop_send(state: WebSocketState) -> bool:
    """Whether a frame must be dropped (the consumer closed the socket or the client left);
    refuses a frame before accept(), which servers reject far from the mistake."""
    if state is WebSocketState.CONNECTING:
        raise RuntimeError(
            "Expected an accepted socket to send a frame on, but the socket is still "
            "connecting: call accept() first"
        )
    return state is not WebSocketState.CONNECTED


def _frame_refused(state: WebSocketState) -> bool:
    """Whether a frame from the client must not reach receive(): only an accepted socket that
    the consumer has not closed takes frames. A client that ignores a close (4401, 4403) and
    keeps sending until the server drops the connection reaches nothing."""
    if state is WebSocketState.CONNECTED:
        return False
    logger.debug("dropped a websocket frame received while the socket is %s", state.value)
    return True


def _close_message(code: int | bool | None, reason: str | None) -> Message:
    message: Message = {"type": "websocket.close"}
    if code is not None and code is not True:
        message["code"] = code
    if reason:
        message["reason"] = reason
    return message


def _receive_arguments(message: Message) -> dict[str, Any]:
    if message.get("text") is not None:
        return {"text_data": message["text"]}
    if message.get("bytes") is not None:
        return {"bytes_data": message["bytes"]}
    raise ValueError(f"Expected 'text' or 'bytes' in a websocket.receive event, got {message!r}")


class WebsocketConsumer(SyncConsumer):
    """Synchronous websocket consumer: override connect(), receive() and disconnect(); each runs
    in a thread and may use the ORM. accept(), send() and close() are plain calls."""

    groups: list[str] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.websocket_state = WebSocketState.CONNECTING

    def websocket_connect(self, message: Message) -> None:
        async_to_sync(self.join_groups)()
        try:
            self.connect()
        except AcceptConnection:
            self.accept()
        except DenyConnection:
            self.close()

    def connect(self) -> None:
        """The client asks to connect: accept() or close() (or raise Accept/DenyConnection)."""
        self.accept()

    def accept(self, subprotocol: str | None = None, headers: Headers | None = None) -> None:
        """Accept the socket, optionally choosing one of `scope["subprotocols"]` and adding
        response headers."""
        message = _accept_message(self.websocket_state, subprotocol, headers)
        self.websocket_state = WebSocketState.CONNECTED
        super().send(message)

    def websocket_receive(self, message: Message) -> None:
        if _frame_refused(self.websocket_state):
            return
        self.receive(**_receive_arguments(message))

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """A frame from the client; exactly one of the arguments is set."""

    def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """Send a text or binary frame; `close=True` (or a close code) closes afterwards."""
        outgoing = _send_message(text_data, bytes_data)
        if _drop_send(self.websocket_state):
            return
        super().send(outgoing)
        if close:
            self.close(close)

    def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close the socket (before accept: refuse the handshake) with an optional close code
        (1000, or 4000-4999 for the application) and reason."""
        if self.websocket_state in (WebSocketState.CLOSED, WebSocketState.DISCONNECTED):
            return
        self.websocket_state = WebSocketState.CLOSED
        super().send(_close_message(code, reason))

    def websocket_send(self, message: Message) -> None:
        """A frame for this socket sent through the layer in Channels 1.x's shape
        (`Group("chat").send({"text": "hi"})`): sent like send(), so never before accept() or
        after a close; a malformed one is dropped (realtime.websocket_state)."""
        event = client_event(message)
        if event is not None and self.websocket_state is WebSocketState.CONNECTED:
            self.send(text_data=event.get("text"), bytes_data=event.get("bytes"))

    def websocket_close(self, message: Message) -> None:
        """A close for this socket sent through the layer (Channels 1.x's ``{"close": code}``);
        a malformed one is dropped."""
        event = client_event(message)
        if event is not None:
            self.close(event.get("code"), event.get("reason"))

    def websocket_disconnect(self, message: Message) -> None:
        self.websocket_state = WebSocketState.DISCONNECTED
        async_to_sync(self.leave_groups)()
        self.disconnect(message.get("code", 1005))
        raise StopConsumer()

    def disconnect(self, code: int) -> None:
        """The client is gone (`code` is its close code); clean up. Nothing can be sent."""


class JsonWebsocketConsumer(WebsocketConsumer):
    """WebsocketConsumer whose frames are JSON text: override receive_json(content), reply with
    send_json(content). A binary frame raises ValueError."""

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            raise ValueError("No text section for incoming WebSocket frame!")
        self.receive_json(self.decode_json(text_data))

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        """A decoded JSON frame from the client."""

    def send_json(self, content: Any, close: bool | int = False) -> None:
        """Encode `content` as JSON and send it as a text frame."""
        self.send(text_data=self.encode_json(content), close=close)

    @classmethod
    def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    def encode_json(cls, content: Any) -> str:
        return json.dumps(content)


class AsyncWebsocketConsumer(AsyncConsumer):
    """Asynchronous websocket consumer: the same hooks as WebsocketConsumer, as coroutines.
    Use `realtime.db.database_sync_to_async` to reach the ORM."""

    groups: list[str] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.websocket_state = WebSocketState.CONNECTING

    async def websocket_connect(self, message: Message) -> None:
        await self.join_groups()
        try:
            await self.connect()
        except AcceptConnection:
            await self.accept()
        except DenyConnection:
            await self.close()

    async def connect(self) -> None:
        """The client asks to connect: accept() or close() (or raise Accept/DenyConnection)."""
        await self.accept()

    async def accept(self, subprotocol: str | None = None, headers: Headers | None = None) -> None:
        """Accept the socket, optionally choosing one of `scope["subprotocols"]` and adding
        response headers."""
        message = _accept_message(self.websocket_state, subprotocol, headers)
        self.websocket_state = WebSocketState.CONNECTED
        await super().send(message)

    async def websocket_receive(self, message: Message) -> None:
        if _frame_refused(self.websocket_state):
            return
        await self.receive(**_receive_arguments(message))

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """A frame from the client; exactly one of the arguments is set."""

    async def send(  # type: ignore[override]
        self,
        text_data: str | None = None,
        bytes_data: bytes | None = None,
        close: bool | int = False,
    ) -> None:
        """Send a text or binary frame; `close=True` (or a close code) closes afterwards."""
        outgoing = _send_message(text_data, bytes_data)
        if _drop_send(self.websocket_state):
            return
        await super().send(outgoing)
        if close:
            await self.close(close)

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close the socket (before accept: refuse the handshake) with an optional close code
        (1000, or 4000-4999 for the application) and reason."""
        if self.websocket_state in (WebSocketState.CLOSED, WebSocketState.DISCONNECTED):
            return
        self.websocket_state = WebSocketState.CLOSED
        await super().send(_close_message(code, reason))

    async def websocket_send(self, message: Message) -> None:
        """A frame for this socket sent through the layer in Channels 1.x's shape
        (`Group("chat").send({"text": "hi"})`): sent like send(), so never before accept() or
        after a close; a malformed one is dropped (realtime.websocket_state)."""
        event = client_event(message)
        if event is not None and self.websocket_state is WebSocketState.CONNECTED:
            await self.send(text_data=event.get("text"), bytes_data=event.get("bytes"))

    async def websocket_close(self, message: Message) -> None:
        """A close for this socket sent through the layer (Channels 1.x's ``{"close": code}``);
        a malformed one is dropped."""
        event = client_event(message)
        if event is not None:
            await self.close(event.get("code"), event.get("reason"))

    async def websocket_disconnect(self, message: Message) -> None:
        self.websocket_state = WebSocketState.DISCONNECTED
        await self.leave_groups()
        await self.disconnect(message.get("code", 1005))
        raise StopConsumer()

    async def disconnect(self, code: int) -> None:
        """The client is gone (`code` is its close code); clean up. Nothing can be sent."""


class AsyncJsonWebsocketConsumer(AsyncWebsocketConsumer):
    """AsyncWebsocketConsumer whose frames are JSON text: override receive_json(content), reply
    with send_json(content). A binary frame raises ValueError."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            raise ValueError("No text section for incoming WebSocket frame!")
        await self.receive_json(await self.decode_json(text_data))

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        """A decoded JSON frame from the client."""

    async def send_json(self, content: Any, close: bool | int = False) -> None:
        """Encode `content` as JSON and send it as a text frame."""
        await self.send(text_data=await self.encode_json(content), close=close)

    @classmethod
    async def decode_json(cls, text_data: str) -> Any:
        return json.loads(text_data)

    @classmethod
    async def encode_json(cls, content: Any) -> str:
        return json.dumps(content)


__all__ = [
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "JsonWebsocketConsumer",
    "WebSocketState",
    "WebsocketConsumer",
]
