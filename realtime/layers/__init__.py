"""Channel layers: the ``CHANNEL_LAYERS`` registry, and handles for sending from anywhere.

``settings.CHANNEL_LAYERS`` maps aliases to backends, like Django's ``CACHES``::

    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": ["redis://127.0.0.1:6379/0"]},
        },
        "local": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"},
    }

As in Channels, ``BaseChannelLayer`` and ``InMemoryChannelLayer`` are importable from here, so
``"BACKEND": "channels.layers.InMemoryChannelLayer"`` ports as
``"realtime.layers.InMemoryChannelLayer"``.

``get_channel_layer(alias="default")`` returns the layer (one instance per alias and process,
built on first use), or ``None`` when ``CHANNEL_LAYERS`` is not set or lacks the alias. Any class
with the layer coroutines works as a BACKEND, ``channels_redis.core.RedisChannelLayer`` included;
a backend that cannot be imported or built raises :class:`InvalidChannelLayerError` naming the
alias and the cause. Changing ``CHANNEL_LAYERS`` (``override_settings``, pytest-django's
``settings`` fixture) empties the registry, so the next call builds the new layer.

:class:`Channel` and :class:`Group` are small handles over a layer, for code that is not a
consumer::

    await Group("room.lobby").send({"type": "chat.message", "text": "hi"})    # async code
    Group("room.lobby").send_sync({"type": "chat.message", "text": "hi"})     # a view, a signal

The sync variants are separate methods (``send_sync``, ``add_sync``, ``discard_sync``) rather
than one method guessing its caller: a coroutine that is silently never awaited is the bug that
guessing invites. They use asgiref's ``async_to_sync``, so they work in Django views and signal
handlers, in sync consumers (their thread hops back to the event loop) and in management commands,
but not inside a running event loop (there, ``await`` the async method).
"""

from __future__ import annotations

import threading
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from realtime.exceptions import InvalidChannelLayerError

from .base import BaseChannelLayer
from .memory import InMemoryChannelLayer

DEFAULT_CHANNEL_LAYER = "default"


class ChannelLayerManager:
    """Builds the layer of each ``CHANNEL_LAYERS`` alias on first use and keeps it."""

    def __init__(self) -> None:
        self.backends: dict[str, Any] = {}
        # Reentrant: a backend's constructor may itself look up a layer.
        self._lock = threading.RLock()
        setting_changed.connect(self._reset_backends)

    def _reset_backends(self, setting: str, **kwargs: Any) -> None:
        """Forget built layers when CHANNEL_LAYERS changes (tests overriding the setting)."""
        if setting == "CHANNEL_LAYERS":
            with self._lock:
                self.backends = {}

    @property
    def configs(self) -> dict[str, Any]:
        # Read lazily so this module imports before settings are configured.
        return getattr(settings, "CHANNEL_LAYERS", None) or {}

    def make_backend(self, name: str) -> Any:
        """Build a new layer for alias ``name`` from its BACKEND and CONFIG."""
        return self._make_backend(name, self._entry(name).get("CONFIG", {}))

    def _entry(self, name: str) -> dict[str, Any]:
        entry = self.configs[name]
        if not isinstance(entry, dict):
            raise InvalidChannelLayerError(
                f"CHANNEL_LAYERS[{name!r}] must be a dict with BACKEND and CONFIG, got {entry!r}"
            )
        return entry

    def make_test_backend(self, name: str) -> Any:
        """Build a new layer for alias ``name`` from its TEST_CONFIG."""
        try:
            config = self._entry(name)["TEST_CONFIG"]
        except KeyError:
            raise InvalidChannelLayerError(f"No TEST_CONFIG specified for {name}") from None
        return self._make_backend(name, config)

    def _make_backend(self, name: str, config: dict[str, Any]) -> Any:
        entry = self._entry(name)
        if "ROUTING" in entry:
            raise InvalidChannelLayerError(
                f"ROUTING key found for {name} - this is no longer needed in Channels 2."
            )
        try:
            backend_path = entry["BACKEND"]
        except KeyError:
            raise InvalidChannelLayerError(f"No BACKEND specified for {name}") from None
        try:
            backend_class = import_string(backend_path)
        except ImportError as exc:
            raise InvalidChannelLayerError(
                f"Cannot import BACKEND {backend_path!r} specified for {name}: {exc}"
            ) from exc
        if not isinstance(config, dict):
            raise InvalidChannelLayerError(
                f"CONFIG of channel layer {name!r} must be a dict, got {config!r}"
            )
        try:
            return backend_class(**config)
        except TypeError as exc:
            raise InvalidChannelLayerError(
                f"Cannot build BACKEND {backend_path!r} for {name} with CONFIG {config!r}: {exc}"
            ) from exc

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            if key not in self.backends:
                self.backends[key] = self.make_backend(key)
            return self.backends[key]

    def __contains__(self, key: object) -> bool:
        return key in self.configs

    def set(self, key: str, layer: Any) -> Any:
        """Make alias ``key`` use ``layer`` (a test swapping the backend); returns the old one."""
        with self._lock:
            old = self.backends.get(key)
            self.backends[key] = layer
            return old


channel_layers = ChannelLayerManager()
"""The process-wide registry: ``channel_layers["default"]`` is the default layer."""


def get_channel_layer(alias: str = DEFAULT_CHANNEL_LAYER) -> Any:
    """The channel layer of ``alias``, or ``None`` if CHANNEL_LAYERS does not configure it."""
    if alias not in channel_layers:
        return None
    return channel_layers[alias]


def _require_layer(alias: str, channel_layer: Any) -> Any:
    layer = channel_layer if channel_layer is not None else get_channel_layer(alias)
    if layer is None:
        raise InvalidChannelLayerError(
            f"No channel layer is configured for alias {alias!r}: add it to CHANNEL_LAYERS "
            f"(configured aliases: {sorted(channel_layers.configs)})"
        )
    return layer


class _LayerHandle:
    """What Channel and Group share: a name, the layer alias (or a given layer), equality."""

    def __init__(
        self, name: str, alias: str = DEFAULT_CHANNEL_LAYER, channel_layer: Any = None
    ) -> None:
        self.name = name
        self.alias = alias
        self._channel_layer = channel_layer

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, alias={self.alias!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and (self.name, self.alias, self._channel_layer) == (
            other.name,
            other.alias,
            other._channel_layer,
        )

    def __hash__(self) -> int:
        return hash((type(self), self.name, self.alias))


class Channel(_LayerHandle):
    """A handle on one channel: ``await Channel("worker.mail").send({"type": "mail.send"})``.

    The layer is looked up at each call (``alias``, default ``"default"``) unless one is given,
    so a handle made at import time follows settings changes.
    """

    @property
    def channel_layer(self) -> Any:
        return _require_layer(self.alias, self._channel_layer)

    async def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` to this channel (ChannelFull if it is at capacity)."""
        await self.channel_layer.send(self.name, message)

    def send_sync(self, message: dict[str, Any]) -> None:
        """:meth:`send` for sync code (views, signals, sync consumers)."""
        async_to_sync(self.send)(message)


class Group(_LayerHandle):
    """A handle on one group: ``await Group("room.lobby").send({...})``, ``add``, ``discard``.

    Needs a layer with the "groups" extension; see :class:`Channel` for how the layer is found.
    """

    @property
    def channel_layer(self) -> Any:
        layer = _require_layer(self.alias, self._channel_layer)
        if "groups" not in getattr(layer, "extensions", ()):
            raise InvalidChannelLayerError(
                f"Channel layer {type(layer).__qualname__} of alias {self.alias!r} does not "
                f"support groups (its extensions: {getattr(layer, 'extensions', [])!r})"
            )
        return layer

    async def send(self, message: dict[str, Any]) -> None:
        """Send ``message`` to every member (a full member misses it; the others get it)."""
        await self.channel_layer.group_send(self.name, message)

    async def add(self, channel: str | Channel) -> None:
        """Add a channel (a name or a :class:`Channel`) to the group."""
        await self.channel_layer.group_add(self.name, _channel_name(channel))

    async def discard(self, channel: str | Channel) -> None:
        """Remove a channel from the group; nothing happens if it is not a member."""
        await self.channel_layer.group_discard(self.name, _channel_name(channel))

    def send_sync(self, message: dict[str, Any]) -> None:
        """:meth:`send` for sync code."""
        async_to_sync(self.send)(message)

    def add_sync(self, channel: str | Channel) -> None:
        """:meth:`add` for sync code."""
        async_to_sync(self.add)(channel)

    def discard_sync(self, channel: str | Channel) -> None:
        """:meth:`discard` for sync code."""
        async_to_sync(self.discard)(channel)


def _channel_name(channel: str | Channel) -> str:
    return channel.name if isinstance(channel, Channel) else channel


__all__ = [
    "DEFAULT_CHANNEL_LAYER",
    "BaseChannelLayer",
    "Channel",
    "ChannelLayerManager",
    "Group",
    "InMemoryChannelLayer",
    "channel_layers",
    "get_channel_layer",
]
