"""A client's pub/sub connection to one server: its inbox (when that server owns the client id)
and the group channels that server owns.

It reconnects by itself with back-off, subscribes everything again, and tells the client when
its inbox is subscribed again (the client then re-reads the memberships other processes stored
for it). On a cluster it uses sharded pub/sub (``SSUBSCRIBE``); a channel whose slot moved away
(the server answers ``MOVED``, or drops the subscription with ``sunsubscribe`` after a
resharding) is handed back to the client, which subscribes it on its new owner.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from typing import TYPE_CHECKING

from redis.asyncio.connection import Connection
from redis.crc import key_slot
from redis.exceptions import MovedError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime.layers.redis.connection import UNREACHABLE, Server
from realtime.layers.redis.shards import ClusterShards

if TYPE_CHECKING:
    from realtime.layers.redis.client import Client

logger = logging.getLogger("realtime.layers.redis")


class Subscriber:
    """The pub/sub connection of one client to one server (see the module docstring)."""

    def __init__(self, client: Client, server: Server, sharded: bool) -> None:
        self.client = client
        self.server = server
        self.sharded = sharded
        self.subscribe_command = "SSUBSCRIBE" if sharded else "SUBSCRIBE"
        self.unsubscribe_command = "SUNSUBSCRIBE" if sharded else "UNSUBSCRIBE"
        # pub/sub channel -> group (None for the client's inbox)
        self.topics: dict[bytes, str | None] = {}
        # pending/confirmed subscriptions of the current connection
        self.subscribed: dict[bytes, asyncio.Future[None]] = {}
        self.connection: Connection | None = None
        self.listener: asyncio.Task[None] | None = None
        self.first_attempt = asyncio.Event()
        self.closed = False

    @property
    def connected(self) -> bool:
        """Whether the connection is up now (its subscriptions are then asked for or in place);
        false while it reconnects."""
        return self.connection is not None

    async def ready(self) -> None:
        """Start the connection once, and wait for its first connection attempt."""
        if self.listener is None:
            self.listener = asyncio.ensure_future(self._listen())
        if not self.first_attempt.is_set():
            await asyncio.shield(self.first_attempt.wait())

    async def subscribe(self, topic: bytes, group: str | None) -> None:
        """Subscribe ``topic`` (a group's channel, or the inbox when ``group`` is None); returns
        once Redis confirmed it, or at once while disconnected (it is subscribed on reconnect)."""
        self.topics[topic] = group
        if self.listener is None:
            await self.ready()
        future = self.subscribed.get(topic)
        if future is None:
            connection = self.connection
            if connection is None:
                return  # subscribed on reconnect
            future = self.subscribed[topic] = asyncio.get_running_loop().create_future()
            try:
                await connection.send_command(self.subscribe_command, topic)
            except UNREACHABLE:
                return
        await asyncio.shield(future)

    async def unsubscribe(self, topic: bytes) -> None:
        self.topics.pop(topic, None)
        future = self.subscribed.pop(topic, None)
        connection = self.connection
        if future is not None and connection is not None:
            with contextlib.suppress(*UNREACHABLE):
                await connection.send_command(self.unsubscribe_command, topic)

    async def _listen(self) -> None:
        failures = 0
        client = self.client
        while not self.closed:
            connection = None
            connected_at = math.inf
            try:
                connection = await self.server.connect()
                connected_at = time.monotonic()
                self.connection = connection
                self.server.note_recovery()
                topics = list(self.topics)
                for topic in topics:
                    self.subscribed.setdefault(topic, asyncio.get_running_loop().create_future())
                if topics:
                    if self.sharded:
                        # One command per channel: SSUBSCRIBE takes channels of one slot only.
                        await connection.send_packed_command(
                            connection.pack_commands(
                                [(self.subscribe_command, topic) for topic in topics]
                            )
                        )
                    else:
                        await connection.send_command(self.subscribe_command, *topics)
                if None not in self.topics.values():
                    self.first_attempt.set()
                await self._read(connection)
            except asyncio.CancelledError:
                raise
            except UNREACHABLE as exc:
                failures += 1
                self.server.note_outage(exc)
                self._follow_failover()
            except Exception:
                failures += 1
                logger.exception("Channel layer pub/sub listener failed; reconnecting")
            finally:
                self.connection = None
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await connection.disconnect()
                # Forget confirmations: everything is subscribed again on reconnect, and nobody
                # should wait for a connection that is gone.
                for future in self.subscribed.values():
                    if not future.done():
                        future.set_result(None)
                self.subscribed.clear()
                self.first_attempt.set()
            if time.monotonic() - connected_at > client.backoff.maximum:
                failures = 1  # it ran for a while: start the back-off afresh
            if not self.closed:
                await asyncio.sleep(client.backoff.delay(failures))

    async def _read(self, connection: Connection) -> None:
        client = self.client
        topics = self.topics
        interval = self.server.timeouts.health_check
        pinged = False
        while True:
            client.sweep_if_due()
            try:
                reply = await connection.read_response(timeout=interval)
            except MovedError as moved:
                # A subscription asked of a server that does not own the channel's slot.
                shards = client.shards
                if isinstance(shards, ClusterShards):
                    shards.moved(moved.slot_id, moved.host, moved.port)
                self._hand_back(moved.slot_id)
                continue
            if reply is None:
                # Quiet for a whole interval: a PING tells a quiet Redis from a dead link.
                if pinged:
                    raise RedisTimeoutError(f"no answer to PING within {interval}s")
                pinged = True
                await connection.send_command("PING")
                continue
            pinged = False
            kind = reply[0]
            if kind == b"message" or kind == b"smessage":
                topic = reply[1]
                if topic in topics:
                    group = topics[topic]
                    if group is None:
                        client.on_inbox(reply[2])
                    else:
                        client.fan_out(group, reply[2])
            elif kind == b"subscribe" or kind == b"ssubscribe":
                topic = reply[1]
                future = self.subscribed.get(topic)
                if future is not None and not future.done():
                    future.set_result(None)
                if topic in topics and topics[topic] is None:
                    self.first_attempt.set()
                    client.inbox_subscribed()
            elif kind == b"sunsubscribe" and reply[1] in topics:
                # Not asked for (unsubscribe() forgets the topic first): the slot moved away.
                self._hand_back(key_slot(reply[1]))

    def _follow_failover(self) -> None:
        """While this server is unreachable, hand back the channels whose slots the cluster now
        gives to another node (a replica took over), and ask for the slot table again."""
        shards = self.client.shards
        if not isinstance(shards, ClusterShards):
            return
        moved = {
            t: g
            for t, g in self.topics.items()
            if shards.server_for_slot(key_slot(t)) is not self.server
        }
        self._hand_back_topics(moved)
        shards.refresh_soon()

    def _hand_back(self, slot: int) -> None:
        """Give the channels of ``slot`` back to the client to subscribe on their new owner."""
        self._hand_back_topics({t: g for t, g in self.topics.items() if key_slot(t) == slot})

    def _hand_back_topics(self, moved: dict[bytes, str | None]) -> None:
        """Forget ``moved`` here and let the client subscribe them where they live now."""
        for topic in moved:
            self.topics.pop(topic, None)
            future = self.subscribed.pop(topic, None)
            if future is not None and not future.done():
                future.set_result(None)
        if moved:
            if None in moved.values():
                self.first_attempt.set()  # the inbox's new server answers from now on
            self.client.resubscribe_elsewhere(moved)

    async def close(self) -> None:
        self.closed = True
        if self.listener is not None:
            self.listener.cancel()
            with contextlib.suppress(BaseException):
                await self.listener
