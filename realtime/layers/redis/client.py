"""Everything one event loop holds: its id, its process-local channels and group memberships, its
connections (a command router, a pub/sub ``Subscriber`` per server it listens to, a ``Fetcher``
per worker channel it receives from) and its leases.

The client is where pub/sub meets memory: a group message arrives once per client and is fanned
out here to every local member; inbox frames deliver direct messages and membership changes made
by other processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from redis.exceptions import RedisError

from realtime.backoff import Backoff
from realtime.exceptions import LayerUnavailableError
from realtime.layers.redis.connection import UNREACHABLE, Server, Timeouts
from realtime.layers.redis.fetcher import Fetcher
from realtime.layers.redis.pubsub import Subscriber
from realtime.layers.redis.routing import Router
from realtime.layers.redis.shards import ShardMap
from realtime.layers.redis.wire import (
    RECOVER,
    InboxMessage,
    MembershipAdded,
    MembershipDiscarded,
    decode_inbox_frame,
    entry_expiry,
    entry_payload,
)

if TYPE_CHECKING:
    from realtime.layers.redis.layer import RedisChannelLayer

logger = logging.getLogger("realtime.layers.redis")


class LocalChannel:
    """A process-local channel: its queue of ``(expires_at, plain payload)`` and the receivers
    waiting for one. A message stays queued until a receiver takes it, so a receive cancelled
    after its wake-up loses nothing (the wake-up passes to the next receiver). Lighter than an
    asyncio.Queue on the path every group message takes once per member."""

    __slots__ = ("capacity", "groups", "latest_expiry", "messages", "waiters", "waiting")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.messages: deque[tuple[float, bytes]] = deque()
        self.waiters: deque[asyncio.Future[None]] = deque()
        self.groups: set[str] = set()
        self.waiting = 0
        # When the newest queued message expires: past it, everything queued is stale.
        self.latest_expiry = 0.0

    def full(self) -> bool:
        return len(self.messages) >= self.capacity

    def put(self, expires_at: float, payload: bytes) -> None:
        self.messages.append((expires_at, payload))
        self.latest_expiry = expires_at
        self._wake_one()

    def _wake_one(self) -> None:
        waiters = self.waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def wait(self) -> asyncio.Future[None]:
        """A future done when a message may be queued for the caller (check, and wait again if
        another receiver took it first)."""
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        return waiter

    def withdraw(self, waiter: asyncio.Future[None]) -> None:
        """Forget the waiter of a receiver that stopped waiting (it was cancelled); a wake-up it
        was given passes to the next receiver."""
        if not waiter.done() or waiter.cancelled():
            with contextlib.suppress(ValueError):
                self.waiters.remove(waiter)
        if self.messages:
            self._wake_one()


class Client:
    """One event loop's share of the layer (see the module docstring)."""

    def __init__(self, layer: RedisChannelLayer, loop: asyncio.AbstractEventLoop) -> None:
        self.layer = layer
        self.loop = loop
        self.id = secrets.token_hex(6)
        self.keys = layer.keys
        self.shards: ShardMap = layer.shards
        self.backoff: Backoff = layer.backoff
        self.timeouts: Timeouts = layer.timeouts
        self.router = Router(layer.shards)
        self.channels: dict[str, LocalChannel] = {}
        # group -> {local channel: joined at (time.time())}
        self.groups: dict[str, dict[str, float]] = {}
        self.oldest_join: dict[str, float] = {}
        self.inbox = self.keys.inbox(self.id)
        self.membership_key = self.keys.memberships(self.id)
        self.subscribers: dict[Server, Subscriber] = {}
        self.fetchers: dict[str, Fetcher] = {}
        self.lease_task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Future[Any]] = set()
        # "group:channel" memberships that came from other processes (kept in membership_key)
        self.remote_members: set[str] = set()
        # "group:channel" -> when a channel of this client left that group here (time.time()): an
        # add made before it (an inbox frame or a re-read of the hash still on its way) is stale.
        self.left_at: dict[str, float] = {}
        self.next_sweep = time.monotonic() + min(layer.expiry, 60)
        self.starting: asyncio.Future[None] | None = None
        self.listening = False  # the inbox was subscribed (or its first attempt failed)
        self.closed = False

    def background(self, coroutine: Awaitable[Any]) -> None:
        """Run a short pub/sub bookkeeping coroutine without waiting for it."""
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- local channels ---------------------------------------------------------------------------

    def owns(self, channel: str) -> bool:
        bang = channel.find("!")
        return bang != -1 and channel[:bang].rpartition(".")[2] == self.id

    def local(self, channel: str) -> LocalChannel:
        entry = self.channels.get(channel)
        if entry is None:
            entry = self.channels[channel] = LocalChannel(self.layer.get_capacity(channel))
        return entry

    def deliver(self, channel: str, payload: bytes, expires_at: float) -> bool:
        """Queue a plain payload on a local channel; False (and a counted drop) when full."""
        entry = self.local(channel)
        if entry.full():
            self.layer.note_dropped()
            return False
        entry.put(expires_at, payload)
        return True

    # -- pub/sub ----------------------------------------------------------------------------------

    def subscriber(self, server: Server) -> Subscriber:
        subscriber = self.subscribers.get(server)
        if subscriber is None:
            subscriber = self.subscribers[server] = Subscriber(
                self, server, self.shards.sharded_pubsub
            )
        return subscriber

    async def listen(self) -> None:
        """Subscribe the inbox once, and wait for the first connection attempt of its server."""
        if self.starting is None:
            self.starting = asyncio.ensure_future(self._subscribe_inbox())
        await asyncio.shield(self.starting)
        self.listening = True

    async def _subscribe_inbox(self) -> None:
        with contextlib.suppress(*UNREACHABLE, RedisError):
            await self.shards.refresh()  # a cluster's slot table, read once up front
        subscriber = self.subscriber(self.shards.server_for(self.id))
        subscriber.topics[self.inbox] = None
        await subscriber.ready()

    async def subscribe(self, group: str) -> None:
        if not self.listening:
            await self.listen()
        subscriber = self.subscriber(self.shards.server_for(group))
        await subscriber.subscribe(self.keys.group_topic(group), group)

    async def unsubscribe(self, group: str) -> None:
        if group in self.groups:
            return  # a member joined again before this ran
        topic = self.keys.group_topic(group)
        for subscriber in self.subscribers.values():
            if topic in subscriber.topics:
                await subscriber.unsubscribe(topic)

    def resubscribe_elsewhere(self, topics: dict[bytes, str | None]) -> None:
        """Subscribe channels a server gave back (their slot moved) on their new owner."""

        async def move() -> None:
            with contextlib.suppress(*UNREACHABLE, RedisError):
                await self.shards.refresh()
            for topic, group in topics.items():
                if group is None:
                    await self.subscriber(self.shards.server_for(self.id)).subscribe(topic, None)
                elif group in self.groups:
                    await self.subscribe(group)

        self.background(move())

    def fan_out(self, group: str, sealed: bytes) -> None:
        members = self.groups.get(group)
        if not members:
            return
        layer = self.layer
        try:
            payload = layer.codec.open(sealed)
        except Exception:
            layer.note_undecryptable(group)
            return
        now = time.time()
        if now - self.oldest_join.get(group, now) > layer.group_expiry:
            self._expire_members(group, now)
            members = self.groups.get(group) or {}
        expires_at = now + layer.expiry
        channels = self.channels
        for name in members:
            entry = channels.get(name)
            if entry is None:
                entry = self.local(name)
            if entry.full():
                layer.note_dropped()
            else:
                entry.put(expires_at, payload)

    def _expire_members(self, group: str, now: float) -> None:
        members = self.groups.get(group, {})
        limit = now - self.layer.group_expiry
        for name in [name for name, joined in members.items() if joined < limit]:
            self.remove_member(group, name)
        if group in self.groups:
            self.oldest_join[group] = min(self.groups[group].values())

    def on_inbox(self, frame: bytes) -> None:
        try:
            decoded = decode_inbox_frame(frame)
        except ValueError:
            logger.exception("Dropped an inbox frame this version does not understand")
            return
        if isinstance(decoded, InboxMessage):
            try:
                plain = self.layer.codec.open(entry_payload(decoded.entry))
            except Exception:
                self.layer.note_undecryptable(decoded.channel)
                return
            self.deliver(decoded.channel, plain, entry_expiry(decoded.entry))
        elif isinstance(decoded, MembershipAdded):
            self._add_and_subscribe(decoded.group, decoded.channel, decoded.joined)
        elif isinstance(decoded, MembershipDiscarded):
            self.remove_member(decoded.group, decoded.channel)

    def inbox_subscribed(self) -> None:
        """The inbox is (again) subscribed: re-read what other processes stored meanwhile."""
        self.background(self._reload_memberships())

    async def _reload_memberships(self) -> None:
        """Apply memberships other processes stored for this client's channels."""
        try:
            (flat,) = await self.router.execute(self.id, ("HGETALL", self.membership_key))
        except (LayerUnavailableError, RedisError):
            return
        limit = time.time() - self.layer.group_expiry
        for field, joined in zip(flat[::2], flat[1::2], strict=True):
            group, _, channel = field.decode().partition(":")
            if float(joined) >= limit:
                self._add_and_subscribe(group, channel, float(joined))

    def _add_and_subscribe(self, group: str, channel: str, joined: float) -> None:
        """Apply a membership another process stored in this client's hash, unless the channel
        left the group here after it was made (the add's frame, or a re-read of the hash, arrived
        after the leave: applying it would bring back a membership the consumer ended)."""
        field = f"{group}:{channel}"
        if self.left_at.get(field, float("-inf")) >= joined:
            return
        self.remote_members.add(field)
        if self.add_member(group, channel, joined):
            self.background(self.subscribe(group))

    async def forget_remote_member(self, group: str, channel: str) -> None:
        """Delete a membership from this client's hash once it was left here, so a reconnect
        does not bring it back, and remember when it was left (see `_add_and_subscribe`)."""
        field = f"{group}:{channel}"
        now = time.time()
        self.left_at[field] = now
        if len(self.left_at) > 10_000:  # adds older than the group expiry are gone anyway
            horizon = now - self.layer.group_expiry
            self.left_at = {f: at for f, at in self.left_at.items() if at >= horizon}
        if field in self.remote_members:
            self.remote_members.discard(field)
            with contextlib.suppress(LayerUnavailableError, RedisError):
                await self.router.execute(self.id, ("HDEL", self.membership_key, field))

    # -- memberships ------------------------------------------------------------------------------

    def add_member(self, group: str, channel: str, joined: float) -> bool:
        """Record a local membership; True when it is the group's first local member (the
        caller then subscribes)."""
        members = self.groups.get(group)
        first = members is None
        if members is None:
            members = self.groups[group] = {}
            self.oldest_join[group] = joined
        members[channel] = joined
        self.local(channel).groups.add(group)
        return first

    def remove_member(self, group: str, channel: str) -> None:
        members = self.groups.get(group)
        if members is None or members.pop(channel, None) is None:
            return
        entry = self.channels.get(channel)
        if entry is not None:
            entry.groups.discard(group)
            self.forget_if_idle(channel, entry)
        if not members:
            del self.groups[group]
            self.oldest_join.pop(group, None)
            self.background(self.unsubscribe(group))

    def forget_everything(self) -> None:
        """Drop every local message, membership and fetched entry (the keys were flushed)."""
        for fetcher in self.fetchers.values():
            fetcher.drop_fetched()
        for group in list(self.groups):
            for channel in list(self.groups[group]):
                self.remove_member(group, channel)
        for channel, entry in list(self.channels.items()):
            entry.messages.clear()
            self.forget_if_idle(channel, entry)

    def sweep_if_due(self) -> None:
        """Drop local channels nobody reads whose messages all expired (their consumer went
        away without a trace), so a long-running process does not collect them."""
        if time.monotonic() < self.next_sweep:
            return
        now = time.time()
        self.next_sweep = time.monotonic() + min(self.layer.expiry, 60)
        for channel, entry in list(self.channels.items()):
            if not entry.waiting and entry.latest_expiry < now and entry.messages:
                entry.messages.clear()
                self.forget_if_idle(channel, entry)

    def forget_if_idle(self, channel: str, entry: LocalChannel) -> None:
        """Drop a local channel nobody waits on, with no messages and no groups (a later send
        creates it again), so finished consumers leave nothing behind."""
        if not entry.waiting and not entry.groups and not entry.messages:
            self.channels.pop(channel, None)

    # -- worker channels --------------------------------------------------------------------------

    def fetcher(self, channel: str) -> Fetcher:
        fetcher = self.fetchers.get(channel)
        if fetcher is None:
            fetcher = self.fetchers[channel] = Fetcher(self, channel)
            if self.lease_task is None:
                self.lease_task = asyncio.ensure_future(self._keep_leases())
        return fetcher

    def _lease_commands(self, channel: str) -> list[tuple[Any, ...]]:
        keys = self.keys
        return [
            ("SET", keys.lease(self.id, channel), 1, "PX", int(self.layer.worker_lease * 1000)),
            ("SADD", keys.inflight_registry(channel), self.id),
        ]

    async def ensure_lease(self, channel: str) -> None:
        """Mark this client alive as a consumer of ``channel`` (idempotent)."""
        await self.router.execute(channel, *self._lease_commands(channel))

    async def recover(self, channel: str) -> int:
        """Return to ``channel``'s queue the in-flight messages of its consumers whose lease
        ran out (their process died); how many moved."""
        keys = self.keys
        (members,) = await self.router.execute(
            channel, ("SMEMBERS", keys.inflight_registry(channel))
        )
        calls = []
        for member in members:
            owner = member.decode()
            if owner == self.id:
                continue
            script_keys = (
                keys.lease(owner, channel),
                keys.inflight(owner, channel),
                keys.queue(channel),
                keys.inflight_registry(channel),
            )
            calls.append((channel, RECOVER.command(script_keys, owner)))
        if not calls:
            return 0
        return sum(await self.router.execute_many(calls))

    async def _keep_leases(self) -> None:
        """Renew this client's leases, and recover dead consumers' messages, for every worker
        channel it receives from; each channel's server on its own (one that is down does not
        hold up the others)."""
        next_recovery: dict[str, float] = {}
        failures = 0
        lease = self.layer.worker_lease
        while not self.closed:
            failed = False
            for channel in list(self.fetchers):
                try:
                    await self.ensure_lease(channel)
                    if time.monotonic() >= next_recovery.get(channel, 0.0):
                        moved = await self.recover(channel)
                        if moved:
                            logger.warning(
                                "Returned %d unacknowledged message(s) of dead workers to %r",
                                moved,
                                channel,
                            )
                        next_recovery[channel] = time.monotonic() + lease
                except asyncio.CancelledError:
                    raise
                except (LayerUnavailableError, *UNREACHABLE, RedisError):
                    failed = True
            failures = failures + 1 if failed else 0
            await asyncio.sleep(self.backoff.delay(failures) if failed else lease / 3)

    # -- shutdown ---------------------------------------------------------------------------------

    async def close(self) -> None:
        self.closed = True
        fetched = list(self.fetchers)
        for fetcher in list(self.fetchers.values()):
            await fetcher.close()
        self.fetchers.clear()
        for subscriber in self.subscribers.values():
            await subscriber.close()
        if self.lease_task is not None:
            self.lease_task.cancel()
            with contextlib.suppress(BaseException):
                await self.lease_task
            calls = [(channel, ("DEL", self.keys.lease(self.id, channel))) for channel in fetched]
            with contextlib.suppress(LayerUnavailableError, RedisError):
                await self.router.execute_many(calls)
        for pending in list(self.tasks):
            pending.cancel()
        await self.router.close()
