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
