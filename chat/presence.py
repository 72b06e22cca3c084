"""Who is in which room, across every server process.

Each open room socket of a logged-in user is one *connection* ``(room, connection id, username)``;
a room's users are the distinct usernames of its connections. With REDIS_URL set, connections
live in one Redis sorted set per room, scored by when they expire: a socket refreshes its entry
every heartbeat (settings.CHAT_PRESENCE_HEARTBEAT_SECONDS), so the connections of a process that
died stop counting once their score passes (settings.CHAT_PRESENCE_TTL_SECONDS after their last
refresh). Readers skip expired entries; `sweep`, run by every live process for the rooms its
sockets show (chat.delivery.SocketWatch), deletes them and names the rooms that lost someone, so
that their open pages are told (a crashed process cannot say goodbye for its users). Whichever
process deletes an entry announces it; the deletion is atomic, so exactly one does. Without Redis
connections live in this process, which then is the only one.

Every method is safe to call from the event loop; `users_in` is also called from Django views
(through async_to_sync). A Redis failure is logged and answered from this process's own view of
the rooms, so presence degrades instead of breaking the chat. `presence_announcer` broadcasts a
room's list when it changes, coalesced per room and process.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from redis.exceptions import RedisError

from chat import protocol
from chat.broadcast import broadcast_transient
from chat.redis_connection import KEY_PREFIX, shared_redis
from realtime.batching import Batcher

logger = logging.getLogger(__name__)

_SEPARATOR = "\x1f"
# Joins served by one pipeline at most (four commands for each room among them).
JOIN_BATCH_SIZE = 200


def heartbeat_seconds() -> float:
    """How often an open room socket refreshes its presence entry."""
    return float(settings.CHAT_PRESENCE_HEARTBEAT_SECONDS)


def ttl_seconds() -> float:
    """How long after its last refresh an entry stops counting."""
    return float(settings.CHAT_PRESENCE_TTL_SECONDS)


class Presence:
    """Connections per room (see module docstring); one instance per process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local: dict[str, dict[str, str]] = {}  # room -> connection id -> username
        self._joins: Batcher[tuple[str, str, str], tuple[list[str], list[str]]] = Batcher(
            self._join_batch, max_size=JOIN_BATCH_SIZE
        )

    @staticmethod
    def _key(room: str) -> str:
        return f"{KEY_PREFIX}presence:{room}"

    async def join(self, room: str, connection_id: str, username: str) -> None:
        """Add (or refresh) one connection of `username` to `room`."""
        with self._lock:
            self._local.setdefault(room, {})[connection_id] = username
        redis = shared_redis()
        if redis is not None:
            ttl = ttl_seconds()
            try:
                async with redis.pipeline(transaction=False) as pipe:
                    pipe.zadd(
                        self._key(room),
                        {f"{username}{_SEPARATOR}{connection_id}": time.time() + ttl},
                    )
                    # A room nobody's live process looks at any more is never swept: let the
                    # whole set go once its last entry is long expired.
                    pipe.pexpire(self._key(room), int((ttl + heartbeat_seconds()) * 2000))
                    await pipe.execute()
            except (RedisError, OSError):
                logger.warning("presence: Redis unavailable, joining %s locally only", room)

    async def join_and_list(
        self, room: str, connection_id: str, username: str
    ) -> tuple[list[str], list[str]]:
        """`join`, with the room's users just before and just after it (what a connecting socket
        needs: whether to announce, and what to show). The joins of every socket that connects
        meanwhile share one Redis pipeline (`realtime.batching`): in a reconnect storm, thousands of
        joins one at a time waited past the pool's timeout for one of its 16 connections and
        fell back to this process's view."""
        with self._lock:
            local_before = sorted(set(self._local.get(room, {}).values()))
            self._local.setdefault(room, {})[connection_id] = username
            local_after = sorted(set(self._local[room].values()))
        if shared_redis() is None:
            return local_before, local_after
        try:
            return await self._joins.submit((room, connection_id, username))
        except (RedisError, OSError):
            logger.warning("presence: Redis unavailable, joining %s locally only", room)
            return local_before, local_after

    async def _join_batch(
        self, joins: list[tuple[str, str, str]]
    ) -> list[tuple[list[str], list[str]] | BaseException]:
        """Serve a batch of `join_and_list` calls in one pipeline of four commands per room (a
        reconnect storm brings many joins of each room at once), in order: a join sees the room
        as Redis had it, with the joins before it in the batch, as any earlier join."""
        redis = shared_redis()
        if redis is None:
            raise RedisError("no Redis client for this event loop")
        now = time.time()
        ttl = ttl_seconds()
        expire_ms = int((ttl + heartbeat_seconds()) * 2000)  # as join() does
        by_room: dict[str, dict[str, float]] = {}
        for room, connection_id, username in joins:
            by_room.setdefault(room, {})[f"{username}{_SEPARATOR}{connection_id}"] = now + ttl
        async with redis.pipeline(transaction=False) as pipe:
            for room, entries in by_room.items():
                key = self._key(room)
                pipe.zremrangebyscore(key, "-inf", now)
                pipe.zrange(key, 0, -1)
                pipe.zadd(key, entries)
                pipe.pexpire(key, expire_ms)
            replies = await pipe.execute()
        present = {
            room: {entry.decode().rsplit(_SEPARATOR, 1)[0] for entry in replies[4 * index + 1]}
            for index, room in enumerate(by_room)
        }
        answers: list[tuple[list[str], list[str]] | BaseException] = []
        for room, _connection_id, username in joins:
            names = present[room]
            before = sorted(names)
            names.add(username)
            answers.append((before, sorted(names)))
        return answers

    async def leave(self, room: str, connection_id: str, username: str) -> None:
        """Remove one connection from `room`."""
        with self._lock:
            connections = self._local.get(room, {})
            connections.pop(connection_id, None)
            if not connections:
                self._local.pop(room, None)
        redis = shared_redis()
        if redis is not None:
            try:
                await redis.zrem(self._key(room), f"{username}{_SEPARATOR}{connection_id}")
            except (RedisError, OSError):
                logger.warning("presence: Redis unavailable, leaving %s locally only", room)

    async def users_in(self, rooms: Iterable[str]) -> dict[str, list[str]]:
        """The sorted distinct usernames present in each of `rooms`."""
        rooms = list(rooms)
        redis = shared_redis()
        if redis is not None and rooms:
            try:
                now = time.time()
                async with redis.pipeline(transaction=False) as pipe:
                    for room in rooms:
                        pipe.zrangebyscore(self._key(room), now, "+inf")
                    replies = await pipe.execute()
                return {
                    room: sorted({m.decode().rsplit(_SEPARATOR, 1)[0] for m in replies[i]})
                    for i, room in enumerate(rooms)
                }
            except (RedisError, OSError):
                logger.warning("presence: Redis unavailable, answering from this process")
        with self._lock:
            return {room: sorted(set(self._local.get(room, {}).values())) for room in rooms}

    async def users(self, room: str) -> list[str]:
        """The sorted distinct usernames present in `room`."""
        return (await self.users_in([room]))[room]

    async def sweep(self, rooms: Iterable[str]) -> list[str]:
        """Delete the expired connections of `rooms` (those of processes that died); return the
        rooms that lost any, which the caller announces. Without Redis, or when Redis fails,
        nothing expires: []."""
        rooms = sorted(set(rooms))
        redis = shared_redis()
        if redis is None or not rooms:
            return []
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for room in rooms:
                    pipe.zremrangebyscore(self._key(room), "-inf", time.time())
                removed = await pipe.execute()
        except (RedisError, OSError):
            logger.warning("presence: Redis unavailable, expired connections stay until later")
            return []
        return [room for room, count in zip(rooms, removed, strict=True) if count]


presence = Presence()

PRESENCE_COALESCE_SECONDS = 0.1
# At most one announcement per room this often: in a reconnect storm a room of 20 otherwise sent
# its full list to every member after nearly every join, ten frames a connect.
PRESENCE_MIN_INTERVAL_SECONDS = 0.5


class PresenceAnnouncer:
    """Broadcasts a room's user list after it changes: PRESENCE_COALESCE_SECONDS after a change
    in a quiet room, and never sooner than PRESENCE_MIN_INTERVAL_SECONDS after the room's last
    announcement from this process (a thousand people joining are not a thousand full lists
    each). Every change is in the next announcement."""

    def __init__(self) -> None:
        self._pending: dict[str, asyncio.Task] = {}
        self._announced_at: dict[str, float] = {}  # room -> loop time of its last announcement

    def changed(self, layer: Any, room: str, private: bool = False) -> None:
        """`room`'s user list changed; a private room's or DM's goes only to the consoles that
        may read private rooms."""
        loop = asyncio.get_running_loop()
        task = self._pending.get(room)
        if task is not None and not task.done() and task.get_loop() is loop:
            return
        last = self._announced_at.get(room)
        delay = PRESENCE_COALESCE_SECONDS
        if last is not None:
            delay = max(delay, last + PRESENCE_MIN_INTERVAL_SECONDS - loop.time())
        self._pending[room] = loop.create_task(self._announce(layer, room, private, delay))

    async def _announce(self, layer: Any, room: str, private: bool, delay: float) -> None:
        await asyncio.sleep(delay)
        self._pending.pop(room, None)
        now = asyncio.get_running_loop().time()
        self._announced_at[room] = now
        if len(self._announced_at) > 10_000:  # forget rooms that have been quiet for a while
            horizon = now - PRESENCE_MIN_INTERVAL_SECONDS
            for name in [r for r, at in self._announced_at.items() if at < horizon]:
                del self._announced_at[name]
        try:
            frame = {"type": protocol.PRESENCE, "room": room, "users": await presence.users(room)}
            console = protocol.ADMIN_PRIVATE_GROUP if private else protocol.ADMIN_GROUP
            await broadcast_transient(layer, [protocol.room_group(room), console], frame)
        except Exception:
            logger.exception("could not announce presence in %s", room)


presence_announcer = PresenceAnnouncer()
