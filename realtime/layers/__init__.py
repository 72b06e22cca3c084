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
consumer. The same methods work from async and from sync code::

    await Group("room.lobby").send({"type": "chat.message", "text": "hi"})    # async code
    Group("room.lobby").send({"type": "chat.message", "text": "hi"})          # a view, a thread
    Group("room.lobby").send({"text": "hi"})       # Channels 1.x shape: a text frame to sockets

Where no event loop runs in the thread (views, management commands, threads, sync consumers), the
call does the work before it returns. Where one runs, it starts the work at once and returns an
awaitable for the outcome; forgetting the ``await`` never leaves it undone (its failure is then
logged). Inside a message consumer, ``send(..., immediately=False)`` (the default) holds the
message until the consumer returns; see :mod:`realtime.layers.delivery`. ``send_sync``,
``add_sync`` and ``discard_sync`` remain as strictly-sync spellings: inside a running event loop
they raise RuntimeError instead of blocking it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from realtime.exceptions import InvalidChannelLayerError

from .base import BaseChannelLayer
from .delivery import LayerOperation, content_events, perform
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
                layer = self.make_backend(key)
                if getattr(layer, "alias", None) is None:
                    # Channels 1.x's `layer.alias`: which CHANNEL_LAYERS entry this layer is.
                    with contextlib.suppress(AttributeError):
                        layer.alias = key
                self.backends[key] = layer
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
    """A handle on one channel: ``Channel("worker.mail").send({"type": "mail.send"})``.

    ``Channel(name, alias=DEFAULT_CHANNEL_LAYER, channel_layer=None)``, as in Channels 1.x. The
    layer is looked up at each call (``alias``) unless one is given, so a handle made at import
    time follows settings changes.
    """

    @property
    def channel_layer(self) -> Any:
        return _require_layer(self.alias, self._channel_layer)

    def send(self, content: dict[str, Any], immediately: bool = False) -> LayerOperation:
        """Send ``content`` to this channel (ChannelFull if it is at capacity).

        ``content`` is a message with a ``"type"``, or a Channels 1.x reply (``{"text": ...}``,
        ``{"accept": True}``, ``{"close": 4000}``), sent as the WebSocket events it stands for.
        Await the result in async code; see the module docstring for ``immediately``.
        """
        events = content_events(content)
        name = self.name

        async def deliver() -> None:
            layer = self.channel_layer
            for event in events:
                await layer.send(name, event)

        return perform(f"{self!r}.send()", deliver, immediately)

    def send_sync(self, message: dict[str, Any]) -> None:
        """:meth:`send` now, for sync code only (RuntimeError inside a running event loop)."""
        _refuse_running_loop(f"{self!r}.send_sync()", "send")
        self.send(message, immediately=True)


class Group(_LayerHandle):
    """A handle on one group: ``Group("room.lobby").send({...})``, ``add``, ``discard``.

    ``Group(name, alias=DEFAULT_CHANNEL_LAYER, channel_layer=None)``; needs a layer with the
    "groups" extension; see :class:`Channel` for how the layer is found and for sync/async use.
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

    def send(self, content: dict[str, Any], immediately: bool = False) -> LayerOperation:
        """Send ``content`` to every member (a full member misses it; the others get it).

        Content as for :meth:`Channel.send`: ``Group("chat").send({"text": "hi"})`` reaches each
        WebSocket member as a text frame.
        """
        events = content_events(content)
        name = self.name

        async def deliver() -> None:
            layer = self.channel_layer
            for event in events:
                await layer.group_send(name, event)

        return perform(f"{self!r}.send()", deliver, immediately)

    def add(self, channel: str | Channel) -> LayerOperation:
        """Add a channel (a name or a :class:`Channel`) to the group; a member stays one."""
        name = _channel_name(channel)
        if hasattr(channel, "joined_groups"):  # a connection's reply channel leaves at its end
            channel.joined_groups.add(self.name)

        async def join() -> None:
            await self.channel_layer.group_add(self.name, name)

        return perform(f"{self!r}.add({name!r})", join)

    def discard(self, channel: str | Channel) -> LayerOperation:
        """Remove a channel from the group; nothing happens if it is not a member."""
        name = _channel_name(channel)
        if hasattr(channel, "joined_groups"):
            channel.joined_groups.discard(self.name)

        async def leave() -> None:
            await self.channel_layer.group_discard(self.name, name)

        return perform(f"{self!r}.discard({name!r})", leave)

    def send_sync(self, message: dict[str, Any]) -> None:
        """:meth:`send` now, for sync code only (RuntimeError inside a running event loop)."""
        _refuse_running_loop(f"{self!r}.send_sync()", "send")
        self.send(message, immediately=True)

    def add_sync(self, channel: str | Channel) -> None:
        """:meth:`add`, for sync code only."""
        _refuse_running_loop(f"{self!r}.add_sync()", "add")
        self.add(channel)

    def discard_sync(self, channel: str | Channel) -> None:
        """:meth:`discard`, for sync code only."""
        _refuse_running_loop(f"{self!r}.discard_sync()", "discard")
        self.discard(channel)


def _refuse_running_loop(call: str, method: str) -> None:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return
    raise RuntimeError(
        f"{call} was called where an event loop is running (async code), where it would block "
        f"the loop; write `await ...{method}(...)` instead"
    )


def _channel_name(channel: str | Channel) -> str:
    name = channel.name if isinstance(channel, Channel) else channel
    if not isinstance(name, str):
        raise TypeError(f"Expected a channel name or a Channel, got {channel!r}")
    return name


__all__ = [
    "DEFAULT_CHANNEL_LAYER",
    "BaseChannelLayer",
    "Channel",
    "ChannelLayerManager",
    "Group",
    "InMemoryChannelLayer",
    "LayerOperation",
    "channel_layers",
    "get_channel_layer",
]
