"""WebSocket frames handed to the kernel at once, instead of on the next turn of the event loop.

Twisted's TCP transport never writes in ``write()``: it appends the bytes to its buffer and
registers the socket for writability (on the asyncio reactor, an ``epoll_ctl`` to add the write
interest), and on the next turn of the loop it writes the buffer and unregisters the socket
(another ``epoll_ctl``). For a chat server that sends each frame to many sockets that is two
system calls and a trip through the reactor per frame per socket, about 6% of a busy process's
time (bench/README.md, "Round 2: where b's and the storm's time went"). asyncio's own transports
do what `write_directly` makes a Daphne WebSocket's transport do: when nothing is waiting in its
buffer, send the bytes right away, and buffer only what the kernel did not take.

Only a plain TCP connection is changed (not TLS, whose transport is another object); bytes are
never reordered (a write goes straight out only when nothing is buffered before it); a send that
fails (the peer went away) is handed to Twisted's own write, whose next attempt sees the error
and closes the connection as before. What stays buffered still counts for the backlog limit
(`realtime.backlog`).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp


def buffered_bytes(transport: Any) -> int:
    """Bytes a Twisted TCP transport holds that the peer has not taken yet (0 if unknown)."""
    try:
        return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
    except AttributeError:
        return 0


def write_directly(transport: Any) -> bool:
    """Make a plain TCP transport's ``write`` send at once when nothing is buffered (see the
    module docstring). Returns whether it applies (False for TLS or any other transport)."""
    if not isinstance(transport, tcp.Connection) or transport.TLS:
        return False
    buffered_write = transport.write

    def write(data: bytes) -> None:
        if (
            data
            and transport.connected
            and not transport.disconnecting
            and not transport._writeDisconnected
            and buffered_bytes(transport) == 0
        ):
            sent = transport.writeSomeData(data)  # bytes sent, 0 if the kernel is full, or an error
            if isinstance(sent, int):
                if sent >= len(data):
                    return
                data = data[sent:]
        buffered_write(data)

    transport.write = write  # type: ignore[method-assign]  # this one connection only
    return True


__all__ = ["buffered_bytes", "write_directly"]
