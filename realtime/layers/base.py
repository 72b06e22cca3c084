"""The channel layer contract, and the checks every backend shares.

A channel layer moves messages between consumers, possibly in other processes. A *message* is a
dict with a ``"type"`` key (the consumer handler it is dispatched to, ``"chat.message"`` ->
``chat_message``)::

    await layer.send("worker.thumbnails", {"type": "thumbnail.make", "image_id": 42})
    message = await layer.receive("worker.thumbnails")

    name = await layer.new_channel()        # "specific.3f9c1a2b!b1946ac92492d2347c6235b4"
    await layer.group_add("room.lobby", name)
    await layer.group_send("room.lobby", {"type": "chat.message", "text": "hi"})

Every backend implements these coroutines:

``send(channel, message)``
    Queue ``message`` on ``channel``. Raises :class:`~realtime.exceptions.ChannelFull` when the
    channel already holds ``capacity`` undelivered messages.
``receive(channel)``
    Wait for the next message on ``channel`` and return it (first in, first out).
``new_channel(prefix="specific")``
    A fresh process-local channel name, ``"<prefix>.<client>!<random>"``.
``group_add(group, channel)`` / ``group_discard(group, channel)``
    Join or leave a group. A membership lasts ``group_expiry`` seconds unless renewed.
``group_send(group, message)``
    Send ``message`` to every member. A member whose channel is full misses this message alone;
    the others get it and the layer counts the drop in ``stats()["dropped"]``.
``flush()`` / ``close()``
    Forget every message and group / release the layer's resources.

and the attribute ``extensions = ["groups", "flush"]``.

Names: channel and group names are ASCII letters, digits, ``-``, ``_`` and ``.``, shorter than
:attr:`BaseChannelLayer.MAX_NAME_LENGTH` (100) characters. A channel name may contain one ``!``:
everything up to it names the process that owns the channel (``new_channel()`` names are like
that), which lets a multi-process backend route the message without a shared queue. A bad name or
a message that is not a dict with a ``"type"`` raises ``TypeError`` naming the offending value.

Configuration (the ``CONFIG`` dict of a ``CHANNEL_LAYERS`` entry) common to every backend:

``capacity`` (100)
    Undelivered messages one channel may hold.
``channel_capacity`` ({})
    Per-channel capacities: ``{"http.response!*": 10, re.compile(r"^worker\\."): 1000}``. Keys
    are globs or compiled regular expressions, matched against the whole channel name in the
    order given; the first match wins. (Django Channels' in-memory layer stores this dict
    uncompiled and crashes on the first send when it is set; here it is compiled once, at
    construction, for every backend.)
``expiry`` (60)
    Seconds an undelivered message is kept.
``group_expiry`` (86400)
    Seconds a group membership lasts. Consumers that disconnect leave their groups; the expiry
    cleans up after those that died without doing so.

This base class is not required: the registry in :mod:`realtime.layers` accepts any class with
the coroutines above (``channels_redis.core.RedisChannelLayer`` for one).
"""

from __future__ import annotations

import fnmatch
import re
import secrets
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import ClassVar

from realtime.types import Message

Pattern = re.Pattern[str]


class BaseChannelLayer:
    """Name and message checks, capacity lookup and configuration shared by every backend.

    Subclasses implement the coroutines listed in the module docstring; the defaults here raise
    ``NotImplementedError`` naming the missing method.
    """

    MAX_NAME_LENGTH: ClassVar[int] = 100
    extensions: ClassVar[list[str]] = ["groups", "flush"]

    # \A...\Z, not ^...$: "$" also matches before a trailing newline, which Channels' checks let
    # through ("room\n" is a valid name there).
    channel_name_regex: ClassVar[Pattern] = re.compile(
        r"\A[a-zA-Z0-9\-_.]+(![a-zA-Z0-9\-_.]*)?\Z", re.ASCII
    )
    group_name_regex: ClassVar[Pattern] = re.compile(r"\A[a-zA-Z0-9\-_.]+\Z", re.ASCII)
    # Django Channels' wording, followed by the offending value.
    invalid_name_error: ClassVar[str] = (
        "{} name must be a valid unicode string "
        f"with length < {MAX_NAME_LENGTH} "
        "containing only ASCII alphanumerics, hyphens, underscores, or periods, not {!r:.150}"
    )

    def __init__(
        self,
        expiry: float = 60,
        capacity: int = 100,
        channel_capacity: Mapping[str | Pattern, int] | None = None,
        group_expiry: float = 86400,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity!r}")
        if expiry <= 0:
            raise ValueError(f"expiry must be a positive number of seconds, got {expiry!r}")
        if group_expiry <= 0:
            raise ValueError(
                f"group_expiry must be a positive number of seconds, got {group_expiry!r}"
            )
        self.expiry = expiry
        self.group_expiry = group_expiry
        self.capacity = capacity
        self.channel_capacity: list[tuple[Pattern, int]] = self.compile_capacities(
            channel_capacity or {}
        )
        # Messages group_send could not deliver because a member's channel was full.
        self.dropped = 0

    # -- configuration --------------------------------------------------------------------------

    @staticmethod
    def compile_capacities(
        channel_capacity: Mapping[str | Pattern, int] | Iterable[tuple[str | Pattern, int]],
    ) -> list[tuple[Pattern, int]]:
        """Turn ``{glob or compiled regex: capacity}`` into an ordered list of (regex, capacity).

        Accepts a mapping, or an already compiled list (so calling it twice is harmless).
        """
        items = (
            channel_capacity.items() if isinstance(channel_capacity, Mapping) else channel_capacity
        )
        compiled: list[tuple[Pattern, int]] = []
        for pattern, capacity in items:
            if isinstance(pattern, re.Pattern):
                regex = pattern
            elif isinstance(pattern, str):
                regex = re.compile(fnmatch.translate(pattern))
            else:
                raise TypeError(
                    f"channel_capacity keys must be glob strings or compiled regular "
                    f"expressions, not {pattern!r}"
                )
            if not isinstance(capacity, int) or capacity < 1:
                raise ValueError(
                    f"channel_capacity[{pattern!r}] must be a positive integer, got {capacity!r}"
                )
            compiled.append((regex, capacity))
        return compiled

    def get_capacity(self, channel: str) -> int:
        """The capacity of ``channel``: the first matching ``channel_capacity`` entry, or
        ``capacity``."""
        for regex, capacity in self.channel_capacity:
            if regex.match(channel):
                return capacity
        return self.capacity

    # -- checks ---------------------------------------------------------------------------------

    def match_type_and_length(self, name: object) -> bool:
        return isinstance(name, str) and len(name) < self.MAX_NAME_LENGTH

    def _matches(self, regex: Pattern, name: object) -> bool:
        return (
            isinstance(name, str) and len(name) < self.MAX_NAME_LENGTH and bool(regex.match(name))
        )

    def require_valid_channel_name(self, name: object, receive: bool = False) -> bool:
        """Raise TypeError unless ``name`` is a valid channel name.

        With ``receive=True`` a process-local name must end at its ``!`` (the form a
        multi-process backend listens on), as in Django Channels.
        """
        if not self._matches(self.channel_name_regex, name):
            raise TypeError(self.invalid_name_error.format("Channel", name))
        assert isinstance(name, str)
        if receive and "!" in name and not name.endswith("!"):
            raise TypeError(f"Specific channel names in receive() must end at the !, not {name!r}")
        return True

    def require_valid_group_name(self, name: object) -> bool:
        """Raise TypeError unless ``name`` is a valid group name (no ``!``)."""
        if not self._matches(self.group_name_regex, name):
            raise TypeError(self.invalid_name_error.format("Group", name))
        return True

    def valid_channel_name(self, name: object, receive: bool = False) -> bool:
        """Deprecated (Channels 4's name): use :meth:`require_valid_channel_name`."""
        warnings.warn(
            "valid_channel_name() is deprecated; use require_valid_channel_name()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_channel_name(name, receive=receive)

    def valid_group_name(self, name: object) -> bool:
        """Deprecated (Channels 4's name): use :meth:`require_valid_group_name`."""
        warnings.warn(
            "valid_group_name() is deprecated; use require_valid_group_name()",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.require_valid_group_name(name)

    def valid_channel_names(self, names: list[str], receive: bool = False) -> bool:
        """Check a non-empty list of channel names (Django Channels' helper)."""
        if not isinstance(names, list) or not names:
            raise TypeError(f"names must be a non-empty list, not {names!r}")
        for name in names:
            self.require_valid_channel_name(name, receive=receive)
        return True

    @staticmethod
    def require_valid_message(message: object) -> None:
        """Raise TypeError unless ``message`` is a dict with a string ``"type"``."""
        if not isinstance(message, dict):
            raise TypeError(
                f"Message must be a dict, not {type(message).__name__}: {message!r:.200}"
            )
        message_type = message.get("type")
        if not isinstance(message_type, str):
            raise TypeError(
                f"Message must have a string 'type' key naming its handler, got {message!r:.200}"
            )

    @staticmethod
    def non_local_name(name: str) -> str:
        """The part of a process-local name up to and including its ``!``; other names whole."""
        bang = name.find("!")
        return name if bang == -1 else name[: bang + 1]

    def make_channel_name(self, prefix: str, client: str) -> str:
        """A new process-local channel name ``"<prefix>.<client>!<random>"``, checked."""
        if not isinstance(prefix, str) or "!" in prefix:
            raise TypeError(f"new_channel() prefix must be a string without '!', got {prefix!r}")
        name = f"{prefix}.{client}!{secrets.token_hex(12)}"
        self.require_valid_channel_name(name)
        return name

    def stats(self) -> dict[str, int]:
        """Counters for monitoring; every backend reports at least ``dropped``."""
        return {"dropped": self.dropped}

    # -- the contract ---------------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        raise NotImplementedError("send() should be implemented in a channel layer")

    async def receive(self, channel: str) -> Message:
        raise NotImplementedError("receive() should be implemented in a channel layer")

    async def new_channel(self, prefix: str = "specific") -> str:
        raise NotImplementedError("new_channel() should be implemented in a channel layer")

    async def flush(self) -> None:
        raise NotImplementedError("flush() not implemented (flush extension)")

    async def close(self) -> None:
        """Release the layer's resources; a layer holding none has nothing to do."""

    async def group_add(self, group: str, channel: str) -> None:
        raise NotImplementedError("group_add() not implemented (groups extension)")

    async def group_discard(self, group: str, channel: str) -> None:
        raise NotImplementedError("group_discard() not implemented (groups extension)")

    async def group_send(self, group: str, message: Message) -> None:
        raise NotImplementedError("group_send() not implemented (groups extension)")

    async def group_send_many(self, groups: Sequence[str], message: Message) -> None:
        """`group_send` of one message to each of ``groups``, in order (a backend may send them
        together: the Redis layer makes it one round trip per server). Every name is checked
        before anything is sent."""
        for group in groups:
            self.require_valid_group_name(group)
        for group in groups:
            await self.group_send(group, message)
