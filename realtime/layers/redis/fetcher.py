"""Moves the messages of one worker channel from Redis to the receivers of one client.

The reliable-queue pattern: ``BLMOVE`` takes the oldest entry of the queue into the client's
in-flight list for that channel (same slot on a cluster), and acknowledging it removes it from
there (``LREM``). Acknowledgements ride along with the next ``BLMOVE``, or leave after a short
pause when the channel is idle. A client keeps a lease per channel it consumes; when a lease runs
out (the process died), any other consumer of the channel moves that client's in-flight entries
back to the queue (``wire.RECOVER``), so a message is delivered at least once.

The fetcher has its own connection (a blocking command would hold up the client's shared one),
to the server that owns the channel. It fetches only while receivers wait, one entry per waiting
receiver, into ``ready``; an entry fetched for a receiver that was cancelled stays in ``ready``
for the next one, and goes back to the queue on ``close()``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from redis.asyncio.connection import Connection
from redis.exceptions import AskError, MovedError, RedisError, TryAgainError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime.layers.redis.connection import UNREACHABLE, Server
from realtime.layers.redis.shards import ClusterShards
from realtime.layers.redis.wire import entry_expiry
from realtime.types import Acknowledge

if TYPE_CHECKING:
    from realtime.layers.redis.client import Client

logger = logging.getLogger("realtime.layers.redis")


class Fetcher:
    """Fetches one worker channel for one client (see the module docstring)."""

    ACK_DELAY = 0.02
    BLOCK_SECONDS = 1.0
    REDIRECT_DELAY = 0.02

    def __init__(self, client: Client, channel: str) -> None:
        self.client = client
        self.channel = channel
        keys = client.keys
        self.queue_key = keys.queue(channel)
        self.inflight_key = keys.inflight(client.id, channel)
        self.ready: asyncio.Queue[bytes] = asyncio.Queue()
        self.waiting = 0
        self.pending_acks: list[bytes] = []
        # Entries handed to receive_with_ack() callers and not acknowledged yet.
        self.outstanding: Counter[bytes] = Counter()
        self.wake = asyncio.Event()
        self.connection: Connection | None = None
        self.server: Server | None = None
        self.task = asyncio.ensure_future(self.run())

    async def get(self) -> bytes:
        self.waiting += 1
        self.wake.set()
        try:
            return await self.ready.get()
        finally:
            self.waiting -= 1

    def ack(self, entry: bytes) -> None:
        self.pending_acks.append(entry)
        self.wake.set()

    def hand_out(self, entry: bytes) -> Acknowledge:
        """Track ``entry`` as held by a caller until the returned coroutine function runs."""
        self.outstanding[entry] += 1
        acknowledged = False

        async def ack() -> None:
            nonlocal acknowledged
            if not acknowledged:
                acknowledged = True
                self.outstanding[entry] -= 1
                if self.outstanding[entry] <= 0:
                    del self.outstanding[entry]
                self.ack(entry)

        return ack

    async def run(self) -> None:
        failures = 0
        backoff = self.client.backoff
        while True:
            self.wake.clear()
            try:
                if self.waiting > self.ready.qsize():
                    await self.fetch()
                    failures = 0
                    continue
                if self.pending_acks:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self.wake.wait(), self.ACK_DELAY)
                    if self.waiting <= self.ready.qsize() and self.pending_acks:
                        await self._with_acks([])
                    continue
                await self.wake.wait()
            except UNREACHABLE as exc:
                failures += 1
                server = self.server
                await self.disconnect()
                if server is not None:
                    server.note_outage(exc)
                # On a cluster, a replica may take the channel's slot over: ask where it is.
                self.client.shards.refresh_soon()
                await asyncio.sleep(backoff.delay(failures))
            except MovedError as exc:
                # The channel's slot moved: follow it (nothing ran on the old owner).
                await self.disconnect()
                shards = self.client.shards
                if isinstance(shards, ClusterShards):
                    shards.moved(exc.slot_id, exc.host, exc.port)
                    await shards.refresh()
            except (AskError, TryAgainError):
                # A migration of the channel's slot is in progress: the owner answers again
                # once it is done (sends meanwhile reach the target through ASK).
                await asyncio.sleep(self.REDIRECT_DELAY)
            except RedisError:
                logger.exception("Fetching from worker channel %r failed", self.channel)
                await asyncio.sleep(backoff.delay(1))

    def _ack_commands(self) -> list[Any]:
        acks, self.pending_acks = self.pending_acks, []
        # One LREM per acknowledged entry, packed into a single pipeline by call().
        return [("LREM", self.inflight_key, 1, entry) for entry in acks]

    async def _with_acks(self, commands: list[Any]) -> list[Any]:
        """Run ``commands`` after the pending acknowledgements; if that fails, the
        acknowledgements stay pending (an LREM that ran already is harmless to repeat)."""
        acks = list(self.pending_acks)
        try:
            return await self.call([self._ack_commands(), commands])
        except BaseException:
            self.pending_acks[:0] = acks
            raise

    async def call(self, batches: list[list[Any]]) -> list[Any]:
        """Replies to the commands of ``batches`` (one pipeline) on the channel's server; the
        first error reply is raised after all replies arrived."""
        commands = [command for batch in batches for command in batch]
        if not commands:
            return []
        if self.connection is None:
            server = self.client.shards.server_for(self.channel)
            self.connection = await server.connect()
            self.server = server
            await self.client.ensure_lease(self.channel)
            await self._return_orphans(self.connection)
            server.note_recovery()
        connection = self.connection
        await connection.send_packed_command(connection.pack_commands(commands))
        timeout = self.BLOCK_SECONDS + self.client.timeouts.command
        replies: list[Any] = []
        first_error: RedisError | None = None
        try:
            async with asyncio.timeout(timeout):
                for _ in commands:
                    try:
                        replies.append(await connection.read_response(timeout=math.inf))
                    except RedisError as error:
                        if isinstance(error, UNREACHABLE):
                            raise
                        first_error = first_error or error
                        replies.append(error)
        except TimeoutError as exc:
            raise RedisTimeoutError(f"Redis did not answer within {timeout}s") from exc
        if first_error is not None:
            raise first_error
        return replies

    async def _return_orphans(self, connection: Connection) -> None:
        """Put back in-flight entries this client does not hold: a connection that broke during
        a BLMOVE may have moved one that never reached us."""
        await connection.send_command("LRANGE", self.inflight_key, 0, -1)
        inflight = await connection.read_response(timeout=math.inf)
        known = Counter(self.outstanding)
        known.update(self.pending_acks)
        known.update(self.ready._queue)  # type: ignore[attr-defined]
        commands: list[Any] = []
        for entry in inflight:
            if known[entry] > 0:
                known[entry] -= 1
                continue
            commands += self._give_back(entry)
        if commands:
            await connection.send_packed_command(connection.pack_commands(commands))
            for _ in commands:
                await connection.read_response(timeout=math.inf)

    def _give_back(self, entry: bytes) -> list[tuple[Any, ...]]:
        """Commands returning an in-flight entry to the consuming end of the queue."""
        return [("LREM", self.inflight_key, 1, entry), ("RPUSH", self.queue_key, entry)]

    async def fetch(self) -> None:
        block = ("BLMOVE", self.queue_key, self.inflight_key, "RIGHT", "LEFT", self.BLOCK_SECONDS)
        replies = await self._with_acks([block])
        entry = replies[-1]
        if entry is None:
            return
        if entry_expiry(entry) < time.time():
            self.pending_acks.append(entry)
            return
        if self.waiting <= self.ready.qsize():
            # Its receiver was cancelled during the BLMOVE: give it back to the queue (at the
            # consuming end) rather than hold it in a process that may never ask again.
            await self.call([self._give_back(entry)])
            return
        self.ready.put_nowait(entry)

    def drop_fetched(self) -> None:
        """Forget fetched entries and pending acknowledgements (the keys were flushed)."""
        while not self.ready.empty():
            self.ready.get_nowait()
        self.pending_acks.clear()

    async def disconnect(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.disconnect()
            self.connection = None
            self.server = None

    async def close(self) -> None:
        """Stop fetching, send pending acks and put fetched-but-unclaimed messages back."""
        self.task.cancel()
        with contextlib.suppress(BaseException):
            await self.task
        unclaimed = []
        while not self.ready.empty():
            unclaimed.append(self.ready.get_nowait())
        commands = self._ack_commands()
        for entry in unclaimed:
            commands += self._give_back(entry)
        with contextlib.suppress(*UNREACHABLE, RedisError):
            await self.call([commands])
        await self.disconnect()
