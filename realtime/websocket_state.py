"""Where a consumer's WebSocket is, and what to do with the frames and closes for it that arrive
through the channel layer.

Channels 1.x wrote to a socket by sending to its reply channel, and code written that way still
does (``Group("chat").send({"text": "hi"})``, see ``realtime.layers.delivery``). Those arrive at
the consumer as layer messages in the shape of the ASGI events they stand for:

    {"type": "websocket.send", "text": "hi"}                       (or "bytes": b"...")
    {"type": "websocket.close", "code": 4000, "reason": "bye"}     (code and reason optional)

Whatever can send to the channel layer can send these, so no consumer hands them to the server as
they came. ``client_event()`` builds the ASGI event from the keys the ASGI spec defines, and
nothing else, or returns None (with a warning in the log) for a malformed one: a frame with
neither or both of text and bytes or of the wrong type, a close code outside 1000 and
3000-4999, a reason that is not a string. Handed to Daphne as they are, those would make it kill
the connection.

``WebSocketState`` is the state machine of the generic consumers (``realtime.generic.websocket``),
which route these events through it. ``SocketTracker`` keeps the same state for a consumer with
no state machine of its own (a plain ``AsyncConsumer`` or ``SyncConsumer`` serving a WebSocket)
by watching the events it sends and receives, so that a layer frame goes out only on a socket the
consumer accepted and nobody closed, a layer close at most once (before accept it refuses the
handshake, as the consumer's own close would), nothing once the client is gone, and no client
frame reaches the consumer after its socket was closed.

Django Channels instead raises ``ValueError("No handler for message type websocket.send")`` in a
plain consumer, which ends the connection: one stray layer message closes a user's socket.
"""

from __future__ import annotations

import enum
import logging
from typing import Any

from realtime.types import Message, Receive, Send

logger = logging.getLogger(__name__)

#: Layer messages that stand for an event to the client.
CLIENT_EVENT_TYPES = frozenset({"websocket.send", "websocket.close"})


class WebSocketState(enum.Enum):
    """Where a consumer's socket is, seen from the consumer."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    CLOSED = "closed"
    DISCONNECTED = "disconnected"


#: States in which a close still means something (before accept it refuses the handshake).
_OPEN = (WebSocketState.CONNECTING, WebSocketState.CONNECTED)


def _valid_close_code(code: Any) -> bool:
    if code is None:
        return True
    return type(code) is int and (code == 1000 or 3000 <= code <= 4999)


def client_event(message: Message) -> Message | None:
    """The clean ASGI event a layer ``websocket.send``/``websocket.close`` message stands for, or
    None (logged) when it is malformed."""
    kind = message.get("type")
    if kind == "websocket.send":
        text, data = message.get("text"), message.get("bytes")
        if text is not None and data is None and isinstance(text, str):
            return {"type": kind, "text": text}
        if data is not None and text is None and isinstance(data, bytes | bytearray):
            return {"type": kind, "bytes": bytes(data)}
    elif kind == "websocket.close":
        code, reason = message.get("code"), message.get("reason")
        if _valid_close_code(code) and (reason is None or isinstance(reason, str)):
            event: Message = {"type": kind}
            if code is not None:
                event["code"] = code
            if reason:
                event["reason"] = reason
            return event
    logger.warning("Dropped a malformed %s message from the channel layer: %.200r", kind, message)
    return None


class SocketTracker:
    """The state of one plain consumer's WebSocket, read off the events that pass (see the
    module docstring). ``watch_send``/``watch_receive`` wrap the connection's ASGI callables."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = WebSocketState.CONNECTING

    def watch_send(self, send: Send) -> Send:
        async def tracked_send(message: Message) -> None:
            kind = message.get("type")
            if kind == "websocket.accept" and self.state is WebSocketState.CONNECTING:
                self.state = WebSocketState.CONNECTED
            elif kind == "websocket.close" and self.state in _OPEN:
                self.state = WebSocketState.CLOSED
            await send(message)

        return tracked_send

    def watch_receive(self, receive: Receive) -> Receive:
        async def tracked_receive() -> Message:
            while True:
                message = await receive()
                kind = message.get("type")
                if kind == "websocket.disconnect":
                    self.state = WebSocketState.DISCONNECTED
                elif kind == "websocket.receive" and self.state is not WebSocketState.CONNECTED:
                    # The consumer closed the socket; the client may keep sending until the
                    # server drops the connection: those frames reach nothing.
                    continue
                return message

        return tracked_receive

    def from_layer(self, message: Message) -> Message | None:
        """The event to send for a layer ``websocket.send``/``websocket.close`` message now, or
        None when the socket's state (or the message) says to drop it."""
        event = client_event(message)
        if event is None:
            return None
        if event["type"] == "websocket.send":
            return event if self.state is WebSocketState.CONNECTED else None
        return event if self.state in _OPEN else None


__all__ = ["CLIENT_EVENT_TYPES", "SocketTracker", "WebSocketState", "client_event"]
