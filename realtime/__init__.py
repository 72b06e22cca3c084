"""Switchboard's realtime core: a Channels-style toolkit for WebSockets, long-poll HTTP, channel
layers and background workers on Django, with Django Channels 4's public names.

Porting from Channels means changing `channels` to `realtime` in imports and settings:

    from realtime.routing import ProtocolTypeRouter, URLRouter
    from realtime.generic.websocket import AsyncJsonWebsocketConsumer

Channels 1.x code ports the same way: `route()`, `route_class()`, `include()` (filter routing),
message consumers (`realtime.message`), `Channel`/`Group` handles that work from sync and async
code, and the session decorators of `realtime.sessions` and `realtime.auth`; see
docs/coming-from-channels.md.

The most used names are also importable from the package itself (`from realtime import
URLRouter`); `__all__` lists them. Middleware (`realtime.auth`, `realtime.sessions`,
`realtime.security`) and the test tools (`realtime.testing`) are imported from their modules,
because they touch Django models or are only for tests.
"""

from realtime.consumer import AsyncConsumer, SyncConsumer
from realtime.db import database_sync_to_async
from realtime.exceptions import (
    AcceptConnection,
    ChannelFull,
    ConsumeLater,
    DenyConnection,
    InvalidChannelLayerError,
    RouteNotFound,
    StopConsumer,
)
from realtime.generic.frames import FrameError, FrameLimits, JsonFrameConsumer
from realtime.generic.http import AsyncHttpConsumer, LongPollConsumer
from realtime.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from realtime.layers import DEFAULT_CHANNEL_LAYER, Channel, Group, channel_layers, get_channel_layer
from realtime.routing import (
    ChannelNameRouter,
    FilterRouter,
    ProtocolTypeRouter,
    URLRouter,
    include,
    route,
    route_class,
)

__version__ = "1.0.0"

__all__ = [
    "DEFAULT_CHANNEL_LAYER",
    "AcceptConnection",
    "AsyncConsumer",
    "AsyncHttpConsumer",
    "AsyncJsonWebsocketConsumer",
    "AsyncWebsocketConsumer",
    "Channel",
    "ChannelFull",
    "ChannelNameRouter",
    "ConsumeLater",
    "DenyConnection",
    "FilterRouter",
    "FrameError",
    "FrameLimits",
    "Group",
    "InvalidChannelLayerError",
    "JsonFrameConsumer",
    "JsonWebsocketConsumer",
    "LongPollConsumer",
    "ProtocolTypeRouter",
    "RouteNotFound",
    "StopConsumer",
    "SyncConsumer",
    "URLRouter",
    "WebsocketConsumer",
    "__version__",
    "channel_layers",
    "database_sync_to_async",
    "get_channel_layer",
    "include",
    "route",
    "route_class",
]
