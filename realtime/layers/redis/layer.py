"""``RedisChannelLayer``: the channel layer contract on top of the pieces of this package.

The layer reads its configuration, builds the shard map, and gives each event loop a ``Client``;
each contract method is a few lines that pick the routing token (channel, group or owner id) and
say which commands run on its server. The package docstring describes the design and guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from realtime.backoff import Backoff
from realtime.exceptions import ChannelFull, LayerUnavailableError
from realtime.layers.base import BaseChannelLayer, Pattern
from realtime.layers.redis.client import Client
from realtime.layers.redis.connection import Server, Timeouts, logger, reconnect_backoff
from realtime.layers.redis.shards import ClusterShards, OneServer, RendezvousShards, ShardMap
from realtime.layers.redis.wire import (
    SEND,
    KeySpace,
    Message,
    MessageCodec,
    added_frame,
    discarded_frame,
    entry_payload,
    message_frame,
    now_ms,
    queue_entry,
)
from realtime.types import Acknowledge


class RedisChannelLayer(BaseChannelLayer):
    """The Redis channel layer: see the package docstring for the design and the guarantees."""

    extensions = ["groups", "flush"]

    def __init__(
        self,
        hosts: list[str | Mapping[str, Any]] | None = None,
        prefix: str = "asgi",
        expiry: float = 60,
        group_expiry: float = 86400,
        capacity: int = 100,
        channel_capacity: Mapping[str | Pattern, int] | None = None,
        symmetric_encryption_keys: Iterable[str | bytes] | None = None,
        worker_lease: float = 30,
        reconnect_max_delay: float = 5,
        socket_connect_timeout: float = 5,
        command_timeout: float = 10,
        health_check_interval: float = 15,
        cluster: str | Mapping[str, Any] | list[str | Mapping[str, Any]] | None = None,
    ) -> None:
        super().__init__(
            expiry=expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
            group_expiry=group_expiry,
        )
        self.timeouts = Timeouts(
            connect=socket_connect_timeout,
            command=command_timeout,
            health_check=health_check_interval,
        )
        self.backoff: Backoff = reconnect_backoff(reconnect_max_delay)
        self.shards = self._shard_map(hosts, cluster)
        self.prefix = prefix
        self.keys = KeySpace(prefix, hash_tags=isinstance(self.shards, ClusterShards))
        self.publish_command = "SPUBLISH" if self.shards.sharded_pubsub else "PUBLISH"
        self.codec = MessageCodec(symmetric_encryption_keys)
        self.worker_lease = worker_lease
        self.dropped = 0
        self.undecryptable = 0
        self._clients: dict[asyncio.AbstractEventLoop, Client] = {}

    def _shard_map(
        self,
        hosts: list[str | Mapping[str, Any]] | None,
        cluster: str | Mapping[str, Any] | list[str | Mapping[str, Any]] | None,
    ) -> ShardMap:
        if cluster is not None:
            if hosts:
                raise ValueError(
                    f"Give either hosts or cluster, not both (hosts={hosts!r}, cluster={cluster!r})"
                )
            seeds = list(cluster) if isinstance(cluster, list) else [cluster]
            return ClusterShards(seeds, self.timeouts)
        if isinstance(hosts, (str, Mapping)):
            raise ValueError(f"hosts must be a list of URLs or dicts, not {hosts!r}")
        entries = list(hosts or ["redis://127.0.0.1:6379/0"])
        servers = [Server(entry, self.timeouts) for entry in entries]
        return OneServer(servers[0]) if len(servers) == 1 else RendezvousShards(servers)

    # -- what the package's parts report back ------------------------------------------------------

    def note_dropped(self) -> None:
        self.dropped += 1

    def note_undecryptable(self, where: str) -> None:
        self.undecryptable += 1
        logger.error("Dropped a message for %r that no configured key decrypts", where)

    def stats(self) -> dict[str, int]:
        return {"dropped": self.dropped, "undecryptable": self.undecryptable}

    # -- plumbing ---------------------------------------------------------------------------------

    def _client(self) -> Client:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = Client(self, loop)
            self._close_with_loop(loop)
        return client

    def _close_with_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Close a loop's client when the loop closes (async_to_sync makes short-lived loops)."""
        original_close = loop.close

        def close() -> None:
            client = self._clients.pop(loop, None)
            if client is not None and not loop.is_closed() and not loop.is_running():
                with contextlib.suppress(Exception):
                    loop.run_until_complete(client.close())
            original_close()

        loop.close = close  # type: ignore[method-assign]

    @staticmethod
    def owner_of(channel: str) -> str:
        """The client id in a process-local channel name (``"specific.<id>!..."``)."""
        return channel[: channel.find("!")].rpartition(".")[2]

    def _entry(self, plain: bytes) -> bytes:
        return queue_entry(self.codec.seal(plain), time.time() + self.expiry)

    def _send_command(self, channel: str, entry: bytes, now: int) -> tuple[Any, ...]:
        """The script call queueing ``entry`` on a worker channel."""
        return SEND.command(
            (self.keys.queue(channel),),
            entry,
            self.get_capacity(channel),
            int((self.expiry + 1) * 1000),
            now,
        )

    # -- the contract -----------------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        """Queue ``message`` on ``channel``. ChannelFull at capacity (for process-local channels
        of another process, the owner drops instead: see the package docstring);
        LayerUnavailableError when the server holding the channel is unreachable."""
        self.require_valid_message(message)
        self.require_valid_channel_name(channel)
        plain = self.codec.pack(message)
        client = self._client()
        if "!" in channel:
            if client.owns(channel):
                entry = client.local(channel)
                if entry.full():
                    raise ChannelFull(
                        f"Channel {channel!r} is full ({entry.capacity} undelivered messages)"
                    )
                entry.put(time.time() + self.expiry, plain)
                return
            owner = self.owner_of(channel)
            frame = message_frame(channel, self._entry(plain))
            await client.router.execute(
                owner, (self.publish_command, self.keys.inbox(owner), frame)
            )
            return
        (queued,) = await client.router.execute(
            channel, self._send_command(channel, self._entry(plain), now_ms())
        )
        if not queued:
            capacity = self.get_capacity(channel)
            raise ChannelFull(f"Channel {channel!r} is full ({capacity} undelivered messages)")

    async def receive(self, channel: str) -> Message:
        """The next message on ``channel`` (acknowledged: see the package docstring)."""
        client = self._client()
        if type(channel) is str and channel in client.channels:
            # Every local channel entry was created under a checked name: the hot path of a
            # consumer's receive loop skips the regular expression.
            return await self._receive_local(client, channel)
        self.require_valid_channel_name(channel)
        if "!" in channel:
            return await self._receive_local(client, channel)
        fetcher = client.fetcher(channel)
        while True:
            entry = await fetcher.get()
            fetcher.ack(entry)
            message = self._open_entry(channel, entry)
            if message is not None:
                return message

    async def receive_with_ack(self, channel: str) -> tuple[Message, Acknowledge]:
        """The next message on ``channel`` and a coroutine function acknowledging it. An
        unacknowledged worker-channel message is delivered again once this client's lease runs
        out (its process died) or the layer closes."""
        self.require_valid_channel_name(channel)
        client = self._client()
        if "!" in channel:
            return await self._receive_local(client, channel), _acknowledged
        fetcher = client.fetcher(channel)
        while True:
            entry = await fetcher.get()
            message = self._open_entry(channel, entry)
            if message is None:
                fetcher.ack(entry)
                continue
            return message, fetcher.hand_out(entry)

    def _open_entry(self, channel: str, entry: bytes) -> Message | None:
        try:
            plain = self.codec.open(entry_payload(entry))
        except Exception:
            self.note_undecryptable(channel)
            return None
        return self.codec.unpack(plain)

    async def _receive_local(self, client: Client, channel: str) -> Message:
        if not client.listening:
            await client.listen()
        entry = client.local(channel)
        entry.waiting += 1
        messages = entry.messages
        try:
            while True:
                while not messages:
                    waiter = entry.wait()
                    try:
                        await waiter
                    except BaseException:
                        entry.withdraw(waiter)
                        raise
                expires_at, payload = messages.popleft()
                if expires_at >= time.time():
                    return self.codec.unpack(payload)
        finally:
            entry.waiting -= 1
            client.forget_if_idle(channel, entry)

    async def new_channel(self, prefix: str = "specific") -> str:
        """A new process-local channel name owned by this event loop's client."""
        client = self._client()
        name = self.make_channel_name(prefix, client.id)
        client.local(name)
        if not client.listening:
            await client.listen()
        return name

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (renewing the membership if it is one already)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        client = self._client()
        now = time.time()
        if "!" not in channel:
            key = self.keys.group_workers(group)
            await client.router.execute(
                group, ("ZADD", key, now, channel), ("EXPIRE", key, int(self.group_expiry) + 1)
            )
            return
        if client.owns(channel):
            members = client.groups.get(group)
            if members is not None and channel in members:
                members[channel] = now
                return
            client.add_member(group, channel, now)
            await client.subscribe(group)
            return
        owner = self.owner_of(channel)
        membership_key = self.keys.memberships(owner)
        await client.router.execute(
            owner,
            ("HSET", membership_key, f"{group}:{channel}", repr(now)),
            ("EXPIRE", membership_key, int(self.group_expiry) + 1),
            (self.publish_command, self.keys.inbox(owner), added_frame(group, channel, now)),
        )

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group`` (nothing happens if it is not a member)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        client = self._client()
        if "!" not in channel:
            await client.router.execute(group, ("ZREM", self.keys.group_workers(group), channel))
            return
        if client.owns(channel):
            client.remove_member(group, channel)
            await client.forget_remote_member(group, channel)
            return
        owner = self.owner_of(channel)
        await client.router.execute(
            owner,
            ("HDEL", self.keys.memberships(owner), f"{group}:{channel}"),
            (self.publish_command, self.keys.inbox(owner), discarded_frame(group, channel)),
        )

    async def group_send(self, group: str, message: Message) -> None:
        """Send ``message`` to every member of ``group``: one PUBLISH for the process-local
        members of every process, plus a queued copy for each worker-channel member. A full
        member misses it alone (counted in ``stats()["dropped"]``)."""
        await self.group_send_many((group,), message)

    async def group_send_many(self, groups: Sequence[str], message: Message) -> None:
        """`group_send` of one message to each of ``groups``: packed once, and the PUBLISH of
        every group in one round trip per server (a chat message goes to its room and to the
        console). Each server publishes them in the order given."""
        for group in groups:
            self.require_valid_group_name(group)
        self.require_valid_message(message)
        plain = self.codec.pack(message)
        sealed = self.codec.seal(plain)
        client = self._client()
        since = time.time() - self.group_expiry
        calls: list[tuple[str, tuple[Any, ...]]] = []
        for group in groups:
            calls.append((group, (self.publish_command, self.keys.group_topic(group), sealed)))
            calls.append((group, ("ZRANGEBYSCORE", self.keys.group_workers(group), since, "+inf")))
        replies = await client.router.execute_many(calls)
        for index, group in enumerate(groups):
            workers = replies[2 * index + 1]
            if workers:
                await self._send_to_workers(client, group, [w.decode() for w in workers], plain)

    async def _send_to_workers(
        self, client: Client, group: str, channels: list[str], plain: bytes
    ) -> None:
        entry = self._entry(plain)
        now = now_ms()
        calls = [(name, self._send_command(name, entry, now)) for name in channels]
        results = await client.router.execute_many(calls)
        self.dropped += sum(1 for queued in results if not queued)
        limit = time.time() - self.group_expiry
        await client.router.execute(
            group, ("ZREMRANGEBYSCORE", self.keys.group_workers(group), "-inf", limit)
        )

    async def check_servers(self) -> None:
        """Raise LayerUnavailableError unless every server the layer needs answers a PING (each
        host of ``hosts``, or each master of the cluster: its slot table is read again first, and
        a slot that no master serves fails the check too) and this event loop's pub/sub
        connections are all up (one that is reconnecting misses the group messages of its
        server). For readiness probes: a group or queue can live on any server, so one that is
        away means part of the traffic fails. The error names what is missing and why."""
        client = self._client()
        await self.shards.refresh()
        servers = self.shards.servers
        answers = await asyncio.gather(
            *(client.router.connection(server).execute(("PING",)) for server in servers),
            return_exceptions=True,
        )
        problems = [
            f"{server.name}: {answer}"
            for server, answer in zip(servers, answers, strict=True)
            if isinstance(answer, BaseException)
        ]
        problems += [
            f"pub/sub connection to {subscriber.server.name} is reconnecting"
            for subscriber in client.subscribers.values()
            if not subscriber.connected
        ]
        if isinstance(self.shards, ClusterShards):
            unserved = self.shards.unserved_slots()
            if unserved:
                problems.append(f"{unserved} cluster slots have no master")
        if problems:
            raise LayerUnavailableError("; ".join(problems))

    async def flush(self) -> None:
        """Delete every key under the prefix (on every shard) and forget this process's channels
        and groups."""
        client = self._client()
        await self.shards.refresh()
        for server in self.shards.servers:
            connection = client.router.connection(server)
            cursor = 0
            while True:
                ((cursor, keys),) = await connection.execute(
                    ("SCAN", cursor, "MATCH", self.keys.pattern(), "COUNT", 1000)
                )
                if keys:
                    # One UNLINK per key: on a cluster, the keys of one call must share a slot.
                    await connection.execute(*(("UNLINK", key) for key in keys))
                if int(cursor) == 0:
                    break
        client.forget_everything()

    async def close(self) -> None:
        """Close this event loop's connections (other loops' clients close with their loops)."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.close()
        for other in list(self._clients):
            if other.is_closed():
                self._clients.pop(other, None)


async def _acknowledged() -> None:
    """The acknowledgement of a process-local message: nothing to do, it is not durable."""
