"""write_directly: a Daphne WebSocket's frames go to the kernel at once when nothing is buffered,
and only what the kernel does not take waits in Twisted's buffer, in order."""

import socket

import pytest
from twisted.internet import tcp
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactor

from realtime.direct_writes import buffered_bytes, write_directly


@pytest.fixture
def connection():
    """A Twisted TCP transport over one end of a socket pair; the other end is the peer."""
    ours, peer = socket.socketpair()
    ours.setblocking(False)
    peer.setblocking(False)
    ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    reactor = MemoryReactor()
    transport = tcp.Connection(ours, Protocol(), reactor)
    transport.connected = True
    yield transport, peer, reactor
    ours.close()
    peer.close()


def read_all(peer: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = peer.recv(65536)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


def test_a_write_with_nothing_buffered_reaches_the_peer_without_waiting_for_the_reactor(
    connection,
):
    transport, peer, reactor = connection
    assert write_directly(transport)
    transport.write(b"hello")
    transport.write(b" world")
    assert read_all(peer) == b"hello world"
    assert buffered_bytes(transport) == 0
    assert transport not in reactor.writers  # no write interest registered


def test_what_the_kernel_does_not_take_is_buffered_and_later_writes_queue_behind_it(connection):
    transport, peer, reactor = connection
    write_directly(transport)
    big = bytes(range(256)) * 4096  # 1 MiB: more than the socket buffers hold
    transport.write(big)
    assert 0 < buffered_bytes(transport) < len(big)
    assert transport in reactor.writers
    transport.write(b"after")  # must not overtake the buffered bytes
    received = b""
    for _ in range(10_000):
        received += read_all(peer)
        transport.doWrite()
        if len(received) == len(big) + len(b"after"):
            break
    assert received == big + b"after"


def test_a_closed_peer_is_left_to_twisteds_own_error_handling(connection):
    transport, peer, _ = connection
    write_directly(transport)
    peer.close()
    transport.write(b"x" * 100_000)  # does not raise; Twisted's next write sees the loss
    assert isinstance(transport.doWrite(), Exception)


def test_tls_and_other_transports_are_left_alone(connection):
    transport, _, _ = connection
    transport.TLS = True
    assert not write_directly(transport)
    assert not write_directly(object())
