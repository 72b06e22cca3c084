"""BoundedWebSocketProtocol: the factory's options reach each connection without autobahn's
pretty-printed debug dump of them; its transport writes directly; a message the application sends
is on the wire as Daphne and autobahn would put it there; a client that does not read is closed
with 4008."""

import autobahn.websocket.protocol
import pytest
from autobahn.twisted.websocket import WebSocketServerFactory
from daphne.ws_protocol import WebSocketProtocol
from twisted.internet.testing import StringTransport

from realtime import backlog
from realtime.backlog import BoundedWebSocketProtocol


def test_each_connection_gets_the_factorys_options_without_the_debug_dump(monkeypatch):
    dumped = []
    original = autobahn.websocket.protocol.pformat
    monkeypatch.setattr(
        autobahn.websocket.protocol, "pformat", lambda obj: dumped.append(obj) or original(obj)
    )
    factory = WebSocketServerFactory()
    factory.setProtocolOptions(autoPingInterval=7, openHandshakeTimeout=11, maxFramePayloadSize=99)
    factory.protocol = BoundedWebSocketProtocol
    protocol = factory.buildProtocol(None)
    protocol.makeConnection(StringTransport())
    assert (protocol.autoPingInterval, protocol.openHandshakeTimeout) == (7, 11)
    assert protocol.maxFramePayloadSize == 99
    for name in BoundedWebSocketProtocol.FACTORY_OPTIONS:
        assert getattr(protocol, name) == getattr(factory, name), name
    assert dumped in ([], [[]])  # none of the options was pretty-printed


def test_a_frame_for_a_socket_its_client_is_closing_is_dropped_not_raised():
    """A room message that races with the client's close: the application goes on to hear the
    disconnect instead of dying on "Attempt to send on a closed protocol"."""
    factory = WebSocketServerFactory()
    factory.protocol = BoundedWebSocketProtocol
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    for state in (protocol.STATE_CLOSING, protocol.STATE_CLOSED):
        protocol.state = state
        protocol.serverSend("a message for a socket that is going away")
        protocol.serverSend(b"\x00", binary=True)
    assert transport.value() == b""


def open_protocol(protocol_class=BoundedWebSocketProtocol):
    """A protocol of `protocol_class` as after a completed handshake, on a StringTransport, with
    Daphne's options (frames of more than 65,535 bytes are split)."""
    factory = WebSocketServerFactory()
    factory.setProtocolOptions(autoFragmentSize=65535)
    factory.protocol = protocol_class
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.state = protocol.STATE_OPEN
    protocol.websocket_version = 13
    protocol.send_state = protocol.SEND_STATE_GROUND
    protocol._perMessageCompress = None
    protocol.client_addr = ["127.0.0.1", 50000]
    return protocol, transport


SIZES = [1, 125, 126, 127, 65535, 65536, 200_000]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", ["text", "bytes"])
def test_a_sent_message_is_on_the_wire_byte_for_byte_as_daphne_and_autobahn_send_it(kind, size):
    payload = "é" * (size // 2) + "a" * (size % 2) if kind == "text" else bytes(size)
    ours, ours_wire = open_protocol()
    theirs, their_wire = open_protocol(WebSocketProtocol)
    for protocol in (ours, theirs):
        protocol.handle_reply({"type": "websocket.send", kind: payload})
        protocol.handle_reply({"type": "websocket.send", kind: payload[:1]})
    assert ours_wire.value() == their_wire.value()
    assert len(ours_wire.value()) > size + 1


def test_messages_daphne_refuses_or_ignores_are_refused_or_ignored_as_before():
    for protocol_class in (BoundedWebSocketProtocol, WebSocketProtocol):
        protocol, transport = open_protocol(protocol_class)
        protocol.handle_reply({"type": "websocket.send", "text": ""})
        protocol.handle_reply({"type": "websocket.send", "bytes": b""})
        protocol.handle_reply({"type": "websocket.send"})
        assert transport.value() == b""
        with pytest.raises(ValueError, match="both bytes and text"):
            protocol.handle_reply({"type": "websocket.send", "text": "a", "bytes": b"b"})


def test_a_message_for_a_closing_or_too_slow_socket_is_dropped():
    protocol, transport = open_protocol()
    protocol.state = protocol.STATE_CLOSING
    protocol.handle_reply({"type": "websocket.send", "text": "late"})
    protocol.state = protocol.STATE_OPEN
    protocol.too_slow = True
    protocol.handle_reply({"type": "websocket.send", "text": "too late"})
    assert transport.value() == b""


def test_a_socket_whose_client_does_not_read_is_closed_with_4008(monkeypatch):
    protocol, transport = open_protocol()
    monkeypatch.setattr(BoundedWebSocketProtocol, "max_backlog", 1000)
    monkeypatch.setattr(backlog, "write_backlog", lambda transport: len(transport.value()))
    protocol.handle_reply({"type": "websocket.send", "text": "x" * 600})
    assert not protocol.too_slow
    protocol.handle_reply({"type": "websocket.send", "text": "x" * 600})
    assert protocol.too_slow
    wire = transport.value()
    assert wire.endswith(b"\x88\x02" + (4008).to_bytes(2, "big"))  # a close frame, code 4008
    protocol.handle_reply({"type": "websocket.send", "text": "after the close"})
    assert transport.value() == wire
