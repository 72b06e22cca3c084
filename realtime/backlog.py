"""A bounded write backlog for each WebSocket that Daphne serves.

ASGI has no back-pressure: ``await send({"type": "websocket.send", ...})`` returns as soon as the
server has the frame, and Daphne (Twisted) keeps every frame a client has not read yet in memory.
A client that stops reading (a hung tab, or an attacker who opens sockets and never reads) makes
the server's memory grow with everything its rooms say. `BoundedWebSocketProtocol` measures what
is waiting in the connection's write buffer after each frame and, when it passes
`REALTIME_WEBSOCKET_MAX_BACKLOG` bytes, closes the socket with 4008 ("too slow"): the close frame
joins the queue, and the connection is dropped if the client has not completed the closing
handshake within autobahn's close timeout. The application sees an ordinary
``websocket.disconnect``; a browser that reads again reconnects and catches up (chat replays what
it missed with ``?after=``).

The same protocol class writes frames without waiting for the reactor
(`realtime.direct_writes`) and skips autobahn's per-connection debug dump of its options.
`manage.py serve` installs it (`install(server)`); the plain ``daphne`` command does not.
"""

from __future__ import annotations

import logging
from typing import Any

from daphne.ws_protocol import WebSocketProtocol
from django.conf import settings

from realtime.direct_writes import buffered_bytes, write_directly

logger = logging.getLogger(__name__)

CLOSE_TOO_SLOW = 4008
DEFAULT_MAX_BACKLOG = 1024 * 1024


#: Bytes a Twisted TCP transport holds that the peer has not taken yet (0 if unknown).
write_backlog = buffered_bytes


class BoundedWebSocketProtocol(WebSocketProtocol):
    """Daphne's WebSocket protocol, closing (4008) a socket whose client stops reading; its
    frames go to the kernel at once when nothing waits before them (`realtime.direct_writes`)."""

    max_backlog = DEFAULT_MAX_BACKLOG
    too_slow = False
    # autobahn copies each of these options from the factory when a connection is made, and
    # pretty-prints all 29 of them for a debug log line, built even when nothing logs at
    # debug level: 5% of a reconnect storm's CPU. connectionMade copies them itself, unlogged.
    FACTORY_OPTIONS = WebSocketProtocol.CONFIG_ATTRS
    CONFIG_ATTRS: tuple = ()

    def connectionMade(self) -> None:
        for name in self.FACTORY_OPTIONS:
            if not hasattr(self, name):
                setattr(self, name, getattr(self.factory, name))
        write_directly(self.transport)
        super().connectionMade()

    def handle_reply(self, message: Any) -> None:
        """Daphne's handling of the application's messages, with a shorter way for the one that
        matters most: a ``websocket.send`` on an open connection becomes one frame, built here
        and written at once, instead of a trip through Daphne's and autobahn's general-purpose
        send (10 calls, a debug log call and traffic counters nobody reads; 5% of a busy chat
        process's time). The frame is the one autobahn would send: unmasked, unfragmented (only
        payloads autobahn would not fragment), uncompressed (only without permessage-deflate)."""
        if message.get("type") == "websocket.send":
            text, data = message.get("text"), message.get("bytes")
            if text and data is None:
                opcode, payload = 0x81, text.encode()  # FIN + text
            elif data and text is None:
                opcode, payload = 0x82, bytes(data)  # FIN + binary
            else:
                opcode, payload = 0, b""
            if (
                opcode
                and len(payload) <= self.single_frame_limit
                and self.state == self.STATE_OPEN
                and self.send_state == self.SEND_STATE_GROUND
                and self._perMessageCompress is None
            ):
                if not self.too_slow:
                    self.transport.write(frame_header(opcode, len(payload)) + payload)
                    self.check_backlog()
                return
        super().handle_reply(message)

    @property
    def single_frame_limit(self) -> int:
        """The largest payload autobahn sends as one frame (it splits larger ones)."""
        return min(self.autoFragmentSize or 65535, 65535)

    def serverSend(self, content: Any, binary: bool = False) -> None:
        if self.too_slow:
            return  # closing: nothing more joins the queue
        if self.state in (self.STATE_CLOSING, self.STATE_CLOSED):
            # The client is leaving (its websocket.disconnect is on the way to the application).
            # autobahn would raise "Attempt to send on a closed protocol" inside the application
            # instead, ending it before it hears the disconnect and logging a traceback for each
            # socket a room message raced with (hundreds when a storm's clients leave).
            return
        super().serverSend(content, binary)
        self.check_backlog()

    def check_backlog(self) -> None:
        """Close with 4008 once more than `max_backlog` bytes wait for the client."""
        backlog = write_backlog(self.transport)
        if backlog > self.max_backlog:
            self.too_slow = True
            logger.warning(
                "closing WebSocket %s (%s) with %d: %d bytes wait for a client that does not read",
                self.client_addr,
                getattr(self, "path", b"?"),
                CLOSE_TOO_SLOW,
                backlog,
            )
            self.sendClose(code=CLOSE_TOO_SLOW)


def frame_header(opcode_byte: int, length: int) -> bytes:
    """The header of an unmasked WebSocket frame (RFC 6455, 5.2) of at most 65,535 bytes."""
    if length < 126:
        return bytes((opcode_byte, length))
    return bytes((opcode_byte, 126, length >> 8, length & 0xFF))


def install(server: Any) -> None:
    """Make a Daphne server's WebSocket factory build bounded protocols (call after run() has
    made the factory, or set the class before)."""
    BoundedWebSocketProtocol.max_backlog = getattr(
        settings, "REALTIME_WEBSOCKET_MAX_BACKLOG", DEFAULT_MAX_BACKLOG
    )
    server.ws_factory.protocol = BoundedWebSocketProtocol


__all__ = ["CLOSE_TOO_SLOW", "BoundedWebSocketProtocol", "install", "write_backlog"]
