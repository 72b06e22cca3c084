"""The exceptions of the realtime core, with the same names and bases as Django Channels'.

    Exception
     ├── StopConsumer              a consumer is done: its application returns cleanly
     ├── DenyConnection            raised in connect(): the socket is closed before it is accepted
     ├── AcceptConnection          raised in connect(): the socket is accepted, the consumer runs on
     ├── ChannelFull               channel_layer.send() found the channel at its capacity
     ├── ConsumeLater              raised by a worker handler: put the message back, try it later
     ├── ValueError
     │    ├── InvalidChannelLayerError   bad CHANNEL_LAYERS entry, or a missing extension
     │    └── RouteNotFound              no route matched (a path, a scope type, a channel name,
     │                                   or a route()/route_class()/include() filter)
     └── OSError
          └── ConnectionError
               └── LayerUnavailableError   the layer's Redis (or the shard that owns the name)
                                           is unreachable: the operation did not happen

Routing failures are RouteNotFound, a ValueError with Channels' texts, so code written for
Channels that catches ValueError still works, and a server turns them into a 404 or a websocket
close without matching error text. The filter routes of `realtime.routing.route()` also say what
they tried.
"""


class StopConsumer(Exception):
    """Raise from a handler to end the consumer: its ASGI application returns without error.

    Group memberships of the consumer are discarded on the way out.
    """


class DenyConnection(Exception):
    """Raise from a websocket consumer's connect() to refuse the socket (a close before accept,
    which the server answers with HTTP 403)."""


class AcceptConnection(Exception):
    """Raise from a websocket consumer's connect() to accept the socket and carry on."""


class ChannelFull(Exception):
    """A channel layer's send() found the channel at its capacity; the message was not queued."""


class ConsumeLater(Exception):
    """Raise from a worker (channel) handler to have the message re-queued at the back of its
    channel; the worker gives up after a bounded number of attempts and dead-letters it."""


class LayerUnavailableError(ConnectionError):
    """The channel layer's server could not be reached, so the operation did not happen (nothing
    was queued or published). With several Redis shards, only names that shard owns raise it."""


class InvalidChannelLayerError(ValueError):
    """A CHANNEL_LAYERS entry is misconfigured, or the layer lacks an extension (such as "groups")
    that the caller needs."""


class RouteNotFound(ValueError):
    """No route matched: a URLRouter path, a ProtocolTypeRouter scope type, a ChannelNameRouter
    channel, or a filter route's connection or message. A ValueError, as in Channels, with the
    same texts (``No route found for path 'ws/nowhere/'.``); a filter route's names every route
    tried, for example::

        No route matched websocket.receive on /chat/; tried route('websocket.connect', ...)
    """


__all__ = [
    "AcceptConnection",
    "ChannelFull",
    "ConsumeLater",
    "DenyConnection",
    "InvalidChannelLayerError",
    "LayerUnavailableError",
    "RouteNotFound",
    "StopConsumer",
]
