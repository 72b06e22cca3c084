"""Delivering room events in order to every socket of this process, and catching up what the
channel layer dropped.

A socket forwards a room event only after every earlier one (by the room's `seq`). What it missed
comes from the database: `CatchUpReader` reads a missed range once for all the sockets of this
process that missed the same range at the same moment (a burst overflows many queues alike) and
encodes it once. A drop at the end of a burst has no later event to reveal it, so `SocketWatch`,
one task per process, reads the layer's `stats()["dropped"]` every CHECK_SECONDS and, when it moved,
compares the rooms' `seq` in the database with what each socket delivered; every RESYNC_SECONDS it
does that for every socket, for broadcasts lost without a count (a publish during a Redis restart).
An event committed just before such a look is most likely still on its way over the layer, so the
sockets are compared with the seqs read DELIVERY_GRACE_SECONDS earlier: without that, every resync
of a busy room sent every socket on a trip to the database for the events in flight (200 sockets,
200 reads every 10 s), holding up their live deliveries meanwhile. It also gives each socket its
`tick()` (presence heartbeat, console statistics), and sweeps the presence of the rooms its
sockets show, so that a process that died loses its users on every open page (chat.presence).

What the watch needs of a socket is `WatchedSocket` (chat.consumers.ChatSocket is one).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any, Protocol

from chat import protocol, services
from chat.models import Room
from chat.presence import presence, presence_announcer
from realtime.db import database_sync_to_async

logger = logging.getLogger(__name__)

CHECK_SECONDS = 2.0
RESYNC_SECONDS = 10.0
DELIVERY_GRACE_SECONDS = 1.0


class WatchedSocket(Protocol):
    """What SocketWatch needs of a socket: its layer, the last `seq` it delivered per room, a way
    to catch up to the database's seqs, and its periodic work."""

    channel_layer: Any
    last_seq: dict[str, int]

    async def catch_up_to(self, current: dict[str, int]) -> None: ...

    async def tick(self) -> None: ...


class SocketWatch:
    """The periodic work of every chat socket of this process, done by one task per event loop
    (not a timer per socket): every CHECK_SECONDS it reads the layer's `stats()["dropped"]` once
    and, if it moved (or RESYNC_SECONDS passed), reads the current `seq` of the rooms the sockets
    follow in one query and lets each socket catch up; then it gives each socket its `tick()`
    (presence heartbeat, console statistics)."""

    def __init__(self) -> None:
        # Each socket with the event loop it was added on (tests run several loops in turn).
        self._sockets: weakref.WeakKeyDictionary[WatchedSocket, asyncio.AbstractEventLoop] = (
            weakref.WeakKeyDictionary()
        )
        self._task: asyncio.Task | None = None
        self._dropped: dict[int, int | None] = {}

    def add(self, socket: WatchedSocket) -> None:
        loop = asyncio.get_running_loop()
        self._sockets[socket] = loop
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._dropped[id(socket.channel_layer)] = self._read_dropped(socket.channel_layer)
            self._task = loop.create_task(self._run())

    def discard(self, socket: WatchedSocket) -> None:
        self._sockets.pop(socket, None)

    @staticmethod
    def _read_dropped(layer: Any) -> int | None:
        stats = getattr(layer, "stats", None)
        if stats is None:
            return None
        try:
            return int(stats().get("dropped", 0))
        except Exception:
            return None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        resynced_at = time.monotonic()
        while True:
            await asyncio.sleep(CHECK_SECONDS)
            sockets = [s for s, on in list(self._sockets.items()) if on is loop]
            if not sockets:
                return
            resync = time.monotonic() - resynced_at >= RESYNC_SECONDS
            if resync:
                resynced_at = time.monotonic()
            try:
                await self._catch_up(sockets, resync)
            except Exception:
                logger.exception("chat: catching up after dropped broadcasts failed")
            for socket in sockets:
                try:
                    await socket.tick()
                except Exception:
                    logger.exception("chat: periodic work of a socket failed")
            try:
                await self._sweep_presence(sockets)
            except Exception:
                logger.exception("chat: sweeping expired presence failed")

    @staticmethod
    async def _sweep_presence(sockets: list[WatchedSocket]) -> None:
        """Delete the expired presence entries (of processes that died) in the rooms these
        sockets show, and announce each room that lost someone to every process's sockets."""
        layers = {room: s.channel_layer for s in sockets for room in s.last_seq}
        swept = list(await presence.sweep(layers))
        if not swept:
            return
        # A private room's or DM's presence goes only to the consoles that may read them.
        private = await database_sync_to_async(_private_rooms)(swept)
        for room in swept:
            presence_announcer.changed(layers[room], room, private=room in private)

    async def _catch_up(self, sockets: list[WatchedSocket], resync: bool) -> None:
        """Bring sockets up to the database: those on a layer that dropped something since the
        last look, or all of them when `resync` (broadcasts lost without a trace, e.g. in a
        Redis restart, are then caught up within RESYNC_SECONDS)."""
        layers = {id(s.channel_layer): s.channel_layer for s in sockets}
        moved = set()
        for key, layer in layers.items():
            dropped = self._read_dropped(layer)
            if dropped is not None and dropped != self._dropped.get(key):
                moved.add(key)
            self._dropped[key] = dropped
        behind = sockets if resync else [s for s in sockets if id(s.channel_layer) in moved]
        if not behind:
            return
        rooms = sorted({room for s in behind for room in s.last_seq})
        current = await database_sync_to_async(_seqs_of)(rooms)
        await asyncio.sleep(DELIVERY_GRACE_SECONDS)  # let the events in flight arrive
        await asyncio.gather(*(s.catch_up_to(current) for s in behind), return_exceptions=True)


socket_watch = SocketWatch()


class CatchUpReader:
    """Reads a room's missed events from the database once for every socket of this process that
    missed the same range at the same moment (a burst overflows many queues alike), and encodes
    them once."""

    def __init__(self) -> None:
        self._pending: dict[tuple[str, int, int], asyncio.Future] = {}
        # Room events handed to sockets from the database instead of the channel layer, summed
        # over sockets (/metrics: chat_catch_up_events_total). Zero while the layer loses nothing.
        self.events_caught_up = 0

    async def frames(self, room_slug: str, after_seq: int, upto_seq: int) -> list[str]:
        """The encoded frames of the room's events after `after_seq` up to `upto_seq`, for one
        socket that missed them."""
        key = (room_slug, after_seq, upto_seq)
        future = self._pending.get(key)
        if future is None or future.get_loop() is not asyncio.get_running_loop():
            future = asyncio.ensure_future(self._read(room_slug, after_seq, upto_seq))
            self._pending[key] = future
            future.add_done_callback(lambda _: self._pending.pop(key, None))
        texts = await asyncio.shield(future)
        self.events_caught_up += len(texts)
        return texts

    @staticmethod
    async def _read(room_slug: str, after_seq: int, upto_seq: int) -> list[str]:
        frames = await database_sync_to_async(_events_between_slug)(room_slug, after_seq, upto_seq)
        return [protocol.encode(frame) for frame in frames]


catch_up_reader = CatchUpReader()


def _events_between_slug(room_slug: str, after_seq: int, upto_seq: int) -> list[dict]:
    room = Room.objects.get(slug=room_slug)
    return services.catch_up_events(room, after_seq, upto_seq)


def _private_rooms(room_slugs: list[str]) -> set[str]:
    return set(
        Room.objects.filter(slug__in=room_slugs)
        .exclude(kind=protocol.ROOM_PUBLIC)
        .values_list("slug", flat=True)
    )


def _seqs_of(room_slugs: list[str]) -> dict[str, int]:
    return dict(Room.objects.filter(slug__in=room_slugs).values_list("slug", "seq"))
