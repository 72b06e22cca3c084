"""BoundedWebSocketProtocol's connection set-up: the factory's options reach each connection
without autobahn's pretty-printed debug dump of them; its transport writes directly."""

import autobahn.websocket.protocol
from autobahn.twisted.websocket import WebSocketServerFactory
from twisted.internet.testing import StringTransport

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
