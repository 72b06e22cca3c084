"""The public surface of the realtime package: exactly these names, all importable."""

from __future__ import annotations

import importlib

import pytest

import realtime

PUBLIC_NAMES = [
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

# Where a Django Channels user finds each name after replacing `channels` with `realtime`.
CHANNELS_COMPATIBLE_IMPORTS = {
    "realtime.routing": [
        "ProtocolTypeRouter",
        "URLRouter",
        "ChannelNameRouter",
        "get_default_application",
    ],
    "realtime.consumer": ["AsyncConsumer", "SyncConsumer"],
    "realtime.generic.websocket": [
        "WebsocketConsumer",
        "AsyncWebsocketConsumer",
        "JsonWebsocketConsumer",
        "AsyncJsonWebsocketConsumer",
    ],
    "realtime.generic.http": ["AsyncHttpConsumer", "LongPollConsumer"],
    "realtime.layers": ["get_channel_layer", "channel_layers", "Channel", "Group"],
    "realtime.db": ["database_sync_to_async"],
    "realtime.middleware": ["BaseMiddleware"],
    "realtime.exceptions": [
        "StopConsumer",
        "DenyConnection",
        "AcceptConnection",
        "ChannelFull",
        "ConsumeLater",
        "InvalidChannelLayerError",
    ],
    "realtime.testing": ["WebsocketCommunicator", "HttpCommunicator", "ApplicationCommunicator"],
    "realtime.auth": ["AuthMiddlewareStack", "login", "logout", "get_user"],
    "realtime.sessions": ["SessionMiddlewareStack", "CookieMiddleware", "SessionMiddleware"],
    "realtime.security": ["OriginValidator", "AllowedHostsOriginValidator"],
    "realtime.http": ["AsgiHandler"],
}

# Where a Channels 1.x user finds each name after replacing `channels` with `realtime`.
CHANNELS_1_COMPATIBLE_IMPORTS = {
    "realtime": ["Channel", "Group", "channel_layers", "DEFAULT_CHANNEL_LAYER"],
    "realtime.routing": ["route", "route_class", "include"],
    "realtime.message": ["Message"],
    "realtime.sessions": [
        "channel_session",
        "http_session",
        "channel_and_http_session",
        "enforce_ordering",
        "session_for_reply_channel",
    ],
    "realtime.auth": [
        "channel_session_user",
        "http_session_user",
        "channel_session_user_from_http",
    ],
    "realtime.security.websockets": ["allowed_hosts_only"],
    "realtime.exceptions": ["ConsumeLater", "DenyConnection"],
}


def test_package_exports_exactly_the_public_names() -> None:
    assert sorted(realtime.__all__) == sorted(PUBLIC_NAMES)


def test_every_exported_name_exists() -> None:
    missing = [name for name in realtime.__all__ if not hasattr(realtime, name)]
    assert missing == []


@pytest.mark.parametrize("module_name", sorted(CHANNELS_COMPATIBLE_IMPORTS))
def test_channels_names_import_from_the_renamed_module(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [
        name for name in CHANNELS_COMPATIBLE_IMPORTS[module_name] if not hasattr(module, name)
    ]
    assert missing == []


@pytest.mark.parametrize("module_name", sorted(CHANNELS_1_COMPATIBLE_IMPORTS))
def test_channels_1_names_import_from_the_renamed_module(module_name: str) -> None:
    module = importlib.import_module(module_name)
    missing = [
        name for name in CHANNELS_1_COMPATIBLE_IMPORTS[module_name] if not hasattr(module, name)
    ]
    assert missing == []


def test_exception_bases_match_channels() -> None:
    assert issubclass(realtime.InvalidChannelLayerError, ValueError)
    assert issubclass(realtime.RouteNotFound, ValueError)
    for name in ["StopConsumer", "DenyConnection", "AcceptConnection", "ChannelFull"]:
        assert issubclass(getattr(realtime, name), Exception)
