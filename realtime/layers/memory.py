"""The in-memory channel layer: one process, no server, the embedded default.

Everything lives in dictionaries of this process, so it suits development, tests and the
all-in-one server (web and worker in one process); several processes need the Redis layer.

How it differs from Django Channels' ``InMemoryChannelLayer`` (same API and configuration):

- ``group_send`` costs O(members of the group). Channels scans *every* channel of the layer for
  expired messages on each call, so a broadcast gets slower as the process holds more sockets.
  Here expired messages are dropped lazily where they are met (the head of a queue being sent to
  or received from), and a sweep over all channels runs at most once per ``expiry`` seconds to
  free channels nobody reads any more.
- ``channel_capacity`` works (Channels' in-memory layer crashes on the first send when it is set).
- A message is copied once on the way in, so a sender mutating its dict afterwards changes
  nothing; a group message is shared by the member queues and copied once per delivery, so a
  member that is full costs nothing.
- ``receive()`` waits on a future, without polling, and is cancel-safe: a message is taken off
  its queue only by the receiver that returns it, so a receive cancelled at any point (a consumer
  closing, a timeout) loses nothing; the wake-up it was owed passes to the next receiver.
- The layer may be used from several event loops and threads at once (``async_to_sync`` from a
  Django view runs its own loop in another thread): state is guarded by a ``threading.Lock``
  held only for short, non-awaiting sections, and a receiver waiting in another loop is woken
  with ``call_soon_threadsafe``. Nothing is bound to a loop at import or construction.
- ``flush()`` keeps pending receivers waiting (Channels' orphans them: they never see a later
  message).

As in Channels, a channel whose message expired undelivered is treated as abandoned and removed
from its groups when a later send or sweep finds the stale message (not when its own reader finds
it: a channel being read is alive); group memberships end after ``group_expiry`` seconds unless
renewed by another ``group_add``.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import secrets
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from realtime.exceptions import ChannelFull
from realtime.types import Message

from .base import BaseChannelLayer, Pattern

_IMMUTABLE_TYPES = frozenset({str, int, float, bool, bytes, type(None)})


def copy_message(value: Any) -> Any:
    """A deep copy of a message, fast for the JSON-like values messages usually hold."""
    cls = type(value)
    if cls in _IMMUTABLE_TYPES:
        return value
    if cls is dict:
        return {key: copy_message(item) for key, item in value.items()}
    if cls is list:
        return [copy_message(item) for item in value]
    if cls is tuple:
        return tuple(copy_message(item) for item in value)
    return copy.deepcopy(value)


class _Queue:
    """One channel: its undelivered messages and the receivers waiting for one."""

    __slots__ = ("capacity", "messages", "waiters")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        # (expires_at, message, shared): a shared message is also in other queues (group_send)
        # and is copied when received.
        self.messages: deque[tuple[float, Any, bool]] = deque()
        self.waiters: deque[asyncio.Future[None]] = deque()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _wake_all(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        _wake(future)


# Receivers to wake in other event loops, gathered so that a group_send wakes each loop once.
_Elsewhere = dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[None], "_Queue"]]]


class InMemoryChannelLayer(BaseChannelLayer):
    """A channel layer for one process. CONFIG keys: ``expiry``, ``group_expiry``, ``capacity``,
    ``channel_capacity`` (see :mod:`realtime.layers.base`)."""

    extensions = ["groups", "flush"]

    def __init__(
        self,
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | Pattern, int] | None = None,
    ) -> None:
        super().__init__(
            expiry=expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
            group_expiry=group_expiry,
        )
        self.client_prefix = secrets.token_hex(4)
        self._lock = threading.Lock()
        self._queues: dict[str, _Queue] = {}
        # group -> {channel: joined_at}, and the reverse index channel -> groups.
        self._groups: dict[str, dict[str, float]] = {}
        self._memberships: dict[str, set[str]] = {}
        self._expired = 0
        self._next_sweep = time.monotonic() + self.expiry

    # -- channels -------------------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        """Queue ``message`` on ``channel``; ChannelFull if it holds ``capacity`` messages."""
        self.require_valid_message(message)
        self.require_valid_channel_name(channel)
        entry = copy_message(message)
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        with self._lock:
            self._maybe_sweep(now)
            queue = self._queue(channel)
            if self._drop_expired(queue, now):
                self._leave_all_groups(channel)
            if len(queue.messages) >= queue.capacity:
                raise ChannelFull(
                    f"Channel {channel!r} is full ({queue.capacity} undelivered messages)"
                )
            queue.messages.append((now + self.expiry, entry, False))
            self._wake_one(queue, loop)

    async def receive(self, channel: str) -> Message:
        """The next message on ``channel``, waiting for one if it is empty."""
        self.require_valid_channel_name(channel)
        loop = asyncio.get_running_loop()
        while True:
            now = time.monotonic()
            with self._lock:
                # Expired messages go, but the channel keeps its groups: it is being read.
                # (Before the sweep, which would take the channel out of its groups.)
                queue = self._queues.get(channel)
                if queue is not None:
                    self._drop_expired(queue, now)
                self._maybe_sweep(now)
                queue = self._queue(channel)
                if queue.messages:
                    _, message, shared = queue.messages.popleft()
                    if queue.messages:
                        # Another receiver may be waiting on this channel too.
                        self._wake_one(queue, loop)
                    else:
                        self._forget_if_idle(channel, queue)
                    break
                waiter: asyncio.Future[None] = loop.create_future()
                queue.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                with self._lock:
                    with contextlib.suppress(ValueError):
                        queue.waiters.remove(waiter)
                    # If a sender chose this receiver, pass the wake-up on.
                    if queue.messages:
                        self._wake_one(queue, loop)
                    self._forget_if_idle(channel, queue)
                raise
        return copy_message(message) if shared else message

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new process-local channel name: ``"specific.<client>!<random>"``."""
        return self.make_channel_name(prefix, self.client_prefix)

    # -- groups ---------------------------------------------------------------------------------

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (or renew its membership) for ``group_expiry`` seconds."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        now = time.monotonic()
        with self._lock:
            members = self._groups.setdefault(group, {})
            members.pop(channel, None)  # renewing moves it to the end: oldest stay first
            members[channel] = now
            self._memberships.setdefault(channel, set()).add(group)

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group``; nothing happens if it was not a member."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        with self._lock:
            self._remove_member(group, channel)

    async def group_send(self, group: str, message: Message) -> None:
        """Queue ``message`` for every member of ``group``; a full member misses it (counted in
        ``stats()["dropped"]``), the others get it."""
        self.require_valid_message(message)
        self.require_valid_group_name(group)
        entry = copy_message(message)
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        with self._lock:
            self._maybe_sweep(now)
            members = self._groups.get(group)
            if not members:
                return
            expires_at = now + self.expiry
            joined_cutoff = now - self.group_expiry
            leaving: list[str] = []
            abandoned: list[str] = []
            elsewhere: _Elsewhere = {}
            for channel, joined_at in members.items():
                if joined_at < joined_cutoff:
                    leaving.append(channel)
                    continue
                queue = self._queue(channel)
                if self._drop_expired(queue, now):
                    abandoned.append(channel)
                    continue
                if len(queue.messages) >= queue.capacity:
                    self.dropped += 1
                    continue
                queue.messages.append((expires_at, entry, True))
                self._wake_one(queue, loop, elsewhere)
            self._wake_elsewhere(elsewhere, loop)
            for channel in leaving:
                self._remove_member(group, channel)
            for channel in abandoned:
                self._leave_all_groups(channel)

    # -- housekeeping ---------------------------------------------------------------------------

    async def flush(self) -> None:
        """Forget every message and group. Receivers already waiting keep waiting."""
        with self._lock:
            self._groups.clear()
            self._memberships.clear()
            for channel, queue in list(self._queues.items()):
                queue.messages.clear()
                self._forget_if_idle(channel, queue)

    async def close(self) -> None:
        """Nothing to release: the layer holds no connections or tasks."""

    def stats(self) -> dict[str, int]:
        """``dropped`` (group messages a full member missed), ``expired`` (messages nobody
        received in time), and the current ``channels``, ``groups`` and ``queued`` messages."""
        with self._lock:
            return {
                "dropped": self.dropped,
                "expired": self._expired,
                "channels": len(self._queues),
                "groups": len(self._groups),
                "queued": sum(len(queue.messages) for queue in self._queues.values()),
            }

    # -- internals (called with the lock held) ----------------------------------------------------

    def _queue(self, channel: str) -> _Queue:
        queue = self._queues.get(channel)
        if queue is None:
            queue = self._queues[channel] = _Queue(self.get_capacity(channel))
        return queue

    def _forget_if_idle(self, channel: str, queue: _Queue) -> None:
        # Group members keep their (empty) queue: the next group_send needs it again.
        if (
            not queue.messages
            and not queue.waiters
            and channel not in self._memberships
            and self._queues.get(channel) is queue
        ):
            del self._queues[channel]

    def _drop_expired(self, queue: _Queue, now: float) -> bool:
        """Drop expired messages from the head of ``queue``; True if there were any.

        Every message of a layer gets the same expiry, so the oldest are always at the head.
        """
        messages = queue.messages
        dropped = 0
        while messages and messages[0][0] <= now:
            messages.popleft()
            dropped += 1
        self._expired += dropped
        return dropped > 0

    def _wake_one(
        self,
        queue: _Queue,
        running: asyncio.AbstractEventLoop,
        elsewhere: _Elsewhere | None = None,
    ) -> None:
        """Wake the longest-waiting receiver of ``queue``, in whichever loop it waits.

        With ``elsewhere``, a receiver in another loop is only noted there, for
        :meth:`_wake_elsewhere` to wake together with the others of its loop.
        """
        while queue.waiters:
            waiter = queue.waiters.popleft()
            if waiter.done():
                continue
            waiter_loop = waiter.get_loop()
            if waiter_loop is running:
                waiter.set_result(None)
                return
            if elsewhere is not None:
                elsewhere.setdefault(waiter_loop, []).append((waiter, queue))
                return
            try:
                waiter_loop.call_soon_threadsafe(_wake, waiter)
            except RuntimeError:  # that loop is closed: its receiver is gone
                continue
            return

    def _wake_elsewhere(self, elsewhere: _Elsewhere, running: asyncio.AbstractEventLoop) -> None:
        for waiter_loop, pairs in elsewhere.items():
            try:
                waiter_loop.call_soon_threadsafe(_wake_all, [waiter for waiter, _ in pairs])
            except RuntimeError:  # that loop is closed: wake the next receiver of each queue
                for _, queue in pairs:
                    self._wake_one(queue, running)

    def _remove_member(self, group: str, channel: str) -> None:
        members = self._groups.get(group)
        if members is not None:
            members.pop(channel, None)
            if not members:
                del self._groups[group]
        groups = self._memberships.get(channel)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self._memberships[channel]
                queue = self._queues.get(channel)
                if queue is not None:
                    self._forget_if_idle(channel, queue)

    def _leave_all_groups(self, channel: str) -> None:
        for group in list(self._memberships.get(channel, ())):
            self._remove_member(group, channel)

    def _maybe_sweep(self, now: float) -> None:
        """At most once per ``expiry`` seconds: drop expired messages and memberships everywhere,
        and forget channels left with nothing, so abandoned channels do not accumulate."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.expiry
        for channel, queue in list(self._queues.items()):
            if self._drop_expired(queue, now):
                self._leave_all_groups(channel)
            self._forget_if_idle(channel, queue)
        joined_cutoff = now - self.group_expiry
        for group, members in list(self._groups.items()):
            for channel in [c for c, joined_at in members.items() if joined_at < joined_cutoff]:
                self._remove_member(group, channel)


__all__ = ["InMemoryChannelLayer", "copy_message"]
