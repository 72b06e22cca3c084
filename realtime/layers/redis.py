"""A channel layer on Redis for many processes on many machines: ``RedisChannelLayer``.

Configuration (``CHANNEL_LAYERS[alias]["CONFIG"]``, the keys channels_redis users know)::

    {
        "hosts": ["redis://127.0.0.1:6379/0"],   # one Redis: a URL, or a dict of connection kwargs
        "prefix": "asgi",                        # every key and pub/sub channel starts with it
        "expiry": 60,                            # seconds an undelivered message is kept
        "group_expiry": 86400,                   # seconds a group membership lasts
        "capacity": 100,                         # undelivered messages per channel
        "channel_capacity": {"worker.*": 1000},  # per-channel capacities (globs or regexes)
        "symmetric_encryption_keys": ["..."],    # encrypt payloads (Fernet; first key encrypts)
        "worker_lease": 30,                      # seconds before a dead worker's messages return
        "reconnect_max_delay": 5,                # back-off cap while Redis is unreachable
        "command_timeout": 10,                   # seconds before a silent Redis counts as down
        "health_check_interval": 15,             # PING the pub/sub connection when this quiet
    }

How messages travel
-------------------
Every event loop that uses the layer holds a *client*: one command connection (the commands of
all its tasks are written in order and their replies matched in order, so they go out pipelined
with no pool checkout), one pub/sub connection, and one blocking connection per worker channel it
receives from: 2,000 consumers in a process cost two connections. A client has an id;
``new_channel()`` names carry it (``"specific.<client id>!<random>"``) so any process can tell
which client owns a channel.

Process-local channels (names with ``!``) live in memory in their owner, never in a Redis list:

- ``send`` from the owner itself puts the message straight on the local queue (no Redis at all);
  from anywhere else it is one ``PUBLISH`` to the owner's *inbox* (``<prefix>:i:<client id>``).
- ``group_add(group, name)`` by the owner records the membership in memory and subscribes the
  client to the group's pub/sub channel (``<prefix>:g:<group>``) when it is its first member
  there. Done by another process (a Django view calling ``Group(g).add_sync(name)``), it stores the
  membership in the owner's hash (``<prefix>:m:<client id>``) and publishes it to the owner's
  inbox; the owner applies it at once, and re-reads the hash whenever it (re)connects, so a
  membership change made while it was cut off from Redis still arrives.
- ``group_send`` is one ``PUBLISH`` (pipelined with one ``ZRANGEBYSCORE``, see below) whatever
  the group size: each subscribed client decrypts and fans the payload out to its own members in
  memory. A member whose queue is full misses that message alone (``stats()["dropped"]``).

Worker channels (names without ``!``) are durable queues, Redis lists ``<prefix>:q:<name>``:

- ``send`` runs a small script: drop expired messages when the list looks full, refuse
  (``ChannelFull``) at capacity, ``LPUSH``, refresh the key's TTL.
- A receiving client moves messages with ``BLMOVE`` into its own *in-flight list*
  ``<prefix>:f:<client id>:<name>`` (the reliable-queue pattern) and keeps a lease key
  ``<prefix>:alive:<client id>`` alive while it consumes. Acknowledging a message removes it from
  the in-flight list; acknowledgements ride along with the next ``BLMOVE`` of the channel, so they
  cost no extra round trip in a busy worker.
- Any consuming client, every ``worker_lease`` seconds, moves the in-flight messages of clients
  whose lease expired (killed workers, lost machines) back to the front of their queues. A message
  is therefore delivered *at least once*: exactly once in normal operation, again after its
  receiver died before acknowledging it.
- Group members that are worker channels are kept in a sorted set ``<prefix>:gw:<group>``
  (score: when they joined); ``group_send`` reads it in the same round trip as its ``PUBLISH``
  and queues the message on each of them (a second round trip, only for groups that have any).

Receiving
---------
``receive(channel)`` is the Channels contract: it returns the next message and acknowledges it
(the acknowledgement travels with the client's next command on that channel).
``receive_with_ack(channel) -> (message, ack)`` is for workers that want at-least-once delivery
across crashes: ``await ack()`` once the message is handled; a message never acknowledged goes
back to its queue when its client's lease runs out. For process-local channels ``ack`` does
nothing (they are not durable). Cancelling a ``receive`` loses nothing: a message fetched for a
receiver that went away waits for the next ``receive`` of that channel (and goes back to the
Redis queue on ``close()``).

Faults
------
Redis unreachable or restarting never crashes the process and never spins: the pub/sub
connection and the worker fetchers reconnect with exponential back-off (capped at
``reconnect_max_delay``), re-subscribe every group and re-read remote memberships; the outage is
logged once at WARNING and its end at INFO. Operations that need Redis while it is down (a send
to a worker channel or to another process, ``group_send``, a remote ``group_add``) raise
:class:`LayerUnavailableError` (a ``ConnectionError``) at once: nothing is buffered, so a caller
knows the message was not accepted and may retry or report it. Local work continues: sends
between channels of the same client still work, and receivers keep waiting. Pub/sub messages
published while a client was disconnected are not replayed to it (apps that must not lose
anything resend from their own store, as the chat does with the last id a client saw).

Limits: one Redis server (no sharding over several ``hosts``). A send to a process-local channel
of *another* process cannot see the remote queue, so it never raises ``ChannelFull``: the owner
drops the message when the queue is full and counts it in ``stats()["dropped"]``.
State is per event loop (several loops in one process, as with ``async_to_sync``, each get their
own client); a loop's connections are closed when that loop closes.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import math
import secrets
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

import msgpack
from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime.exceptions import ChannelFull
from realtime.layers.base import BaseChannelLayer, Pattern

logger = logging.getLogger(__name__)

Message = dict[str, Any]
Acknowledge = Callable[[], Awaitable[None]]

# Errors that mean "Redis is not there right now".
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, EOFError)

# Queue entries are "<13-digit expiry in ms><payload>", so the send script can read the expiry.
EXPIRY_DIGITS = 13

# KEYS[1] queue; ARGV: entry, capacity, ttl ms, now ms. Returns 1 if queued, 0 if full.
SEND_SCRIPT = """
local capacity = tonumber(ARGV[2])
if redis.call('LLEN', KEYS[1]) >= capacity then
    local now = tonumber(ARGV[4])
    while true do
        local oldest = redis.call('LINDEX', KEYS[1], -1)
        if not oldest or tonumber(string.sub(oldest, 1, 13)) > now then break end
        redis.call('RPOP', KEYS[1])
    end
    if redis.call('LLEN', KEYS[1]) >= capacity then return 0 end
end
redis.call('LPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS[1] the in-flight registry set; ARGV[1] the key prefix. Moves the in-flight messages of
# every client whose lease key is gone back to the consuming end of their queues, oldest last
# taken first, and returns how many it moved.
RECOVER_SCRIPT = """
local moved = 0
for _, member in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    local sep = string.find(member, ':', 1, true)
    local client = string.sub(member, 1, sep - 1)
    local channel = string.sub(member, sep + 1)
    if redis.call('EXISTS', ARGV[1] .. 'alive:' .. client) == 0 then
        local inflight = ARGV[1] .. 'f:' .. client .. ':' .. channel
        local queue = ARGV[1] .. 'q:' .. channel
        while redis.call('LMOVE', inflight, queue, 'LEFT', 'RIGHT') do
            moved = moved + 1
        end
        redis.call('SREM', KEYS[1], member)
    end
end
return moved
"""


SEND_SHA = hashlib.sha1(SEND_SCRIPT.encode()).hexdigest()
RECOVER_SHA = hashlib.sha1(RECOVER_SCRIPT.encode()).hexdigest()


class LayerUnavailableError(ConnectionError):
    """Redis could not be reached, so the operation did not happen (nothing was queued)."""


class MessageCodec:
    """msgpack serialization, with optional Fernet encryption (first key encrypts, every key
    decrypts, so keys can be rotated). Keys are any strings; each is stretched with SHA-256."""

    def __init__(self, symmetric_encryption_keys: Iterable[str | bytes] | None = None) -> None:
        keys = list(symmetric_encryption_keys or [])
        self.crypter = None
        if keys:
            from cryptography.fernet import Fernet, MultiFernet

            fernets = []
            for key in keys:
                raw = key.encode() if isinstance(key, str) else key
                fernets.append(Fernet(base64.urlsafe_b64encode(hashlib.sha256(raw).digest())))
            self.crypter = MultiFernet(fernets)

    def pack(self, message: Message) -> bytes:
        """The plain msgpack bytes of ``message`` (TypeError for values msgpack cannot hold)."""
        return msgpack.packb(message, use_bin_type=True)

    def unpack(self, payload: bytes) -> Message:
        return msgpack.unpackb(payload, raw=False)

    def seal(self, plain: bytes) -> bytes:
        """What goes over Redis: ``plain`` encrypted when keys are configured."""
        return self.crypter.encrypt(plain) if self.crypter is not None else plain

    def open(self, sealed: bytes) -> bytes:
        """The plain bytes of a sealed payload; ``cryptography.fernet.InvalidToken`` when no key
        fits."""
        return self.crypter.decrypt(sealed) if self.crypter is not None else sealed


def _pool_kwargs(host: str | Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(url, connection kwargs) for one ``hosts`` entry: a URL, ``{"address": url, ...}``,
    redis-py connection kwargs (``{"host": ..., "port": ..., "password": ...}``), or Redis
    Sentinel as channels_redis spells it (``{"sentinels": [(host, port), ...], "master_name":
    ..., "sentinel_kwargs": {...}}``, plus connection kwargs for the master)."""
    if isinstance(host, str):
        return host, {}
    if isinstance(host, Mapping):
        options = dict(host)
        address = options.pop("address", None)
        if isinstance(address, (tuple, list)):
            options["host"], options["port"] = address
            address = None
        return address, options
    raise ValueError(f"hosts entries must be redis:// URLs or dicts, not {host!r}")


class _CommandConnection:
    """One connection for every command of a client (all but pub/sub and blocking fetches).

    Commands from any number of tasks are written in order and their replies matched in order
    (Redis answers in order), so concurrent callers share the connection and their commands go
    out pipelined, with no pool checkout per call.
    """

    def __init__(self, layer: RedisChannelLayer) -> None:
        self.layer = layer
        self.connection: Connection | None = None
        self.replies: deque[asyncio.Future[Any]] = deque()
        self.reader: asyncio.Task[None] | None = None
        self.connecting: asyncio.Future[Connection] | None = None

    async def execute(self, *commands: tuple[Any, ...]) -> list[Any]:
        """Replies to ``commands`` (sent as one pipeline). A Redis error reply raises
        ResponseError after every reply arrived; losing the connection raises
        LayerUnavailableError."""
        connection = self.connection
        if connection is None or not connection.is_connected:
            if connection is not None:
                # Closed under us (the reader is about to report it): never let redis-py
                # reconnect this object behind the reader's back.
                self._lost(connection, RedisConnectionError("connection closed"))
            connection = await self._connect()
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in commands]
        self.replies.extend(futures)
        try:
            # The write happens before this coroutine first yields, so the order of `replies`
            # is the order on the wire.
            await connection.send_packed_command(
                connection.pack_commands(commands), check_health=False
            )
        except UNREACHABLE as exc:
            self._lost(connection, exc)
            raise self.layer._unavailable(exc) from exc
        results = []
        try:
            async with asyncio.timeout(self.layer.command_timeout):
                for future in futures:
                    results.append(await future)
        except UNREACHABLE as exc:
            raise self.layer._unavailable(exc) from exc
        except TimeoutError as exc:
            # Redis hangs (or the network does): give up on this connection.
            self._lost(connection, exc)
            raise self.layer._unavailable(exc) from exc
        for result in results:
            if isinstance(result, ResponseError):
                if str(result).startswith("READONLY"):
                    # A failover turned our server into a replica: find the new master.
                    self._lost(connection, result)
                    raise self.layer._unavailable(result)
                raise result
        return results

    async def _connect(self) -> Connection:
        if self.connecting is None:
            self.connecting = asyncio.ensure_future(self.layer._connect())
        connecting = self.connecting
        try:
            connection = await asyncio.shield(connecting)
        except UNREACHABLE as exc:
            raise self.layer._unavailable(exc) from exc
        finally:
            if self.connecting is connecting and connecting.done():
                self.connecting = None
        if self.connection is not connection:
            self.connection = connection
            self.reader = asyncio.ensure_future(self._read(connection))
            self.layer._note_recovery()
        return connection

    async def _read(self, connection: Connection) -> None:
        replies = self.replies
        try:
            while True:
                try:
                    reply = await connection.read_response(timeout=math.inf)
                except ResponseError as error:
                    reply = error
                if replies:
                    future = replies.popleft()
                    if not future.done():
                        future.set_result(reply)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._lost(connection, exc)

    def _lost(self, connection: Connection, exc: BaseException) -> None:
        """Fail every command waiting on a dead connection; the next call reconnects."""
        if self.connection is not connection:
            return
        self.connection = None
        self.layer._note_outage(exc)
        error = exc if isinstance(exc, UNREACHABLE) else RedisConnectionError(str(exc))
        while self.replies:
            future = self.replies.popleft()
            if not future.done():
                future.set_exception(error)
        if self.reader is not None and self.reader is not asyncio.current_task():
            self.reader.cancel()
        with contextlib.suppress(Exception):
            connection._writer.close()  # type: ignore[union-attr]
        connection._reader = connection._writer = None

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(BaseException):
                await self.reader
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.disconnect()
            self.connection = None


class _LocalChannel:
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


class _Fetcher:
    """Moves messages of one worker channel from Redis to this client's receivers.

    It fetches only while receivers wait (one message per waiting receiver), into ``ready``; a
    message fetched for a receiver that was cancelled stays in ``ready`` for the next one.
    Pending acknowledgements are sent with the next fetch, or after a short pause when idle.
    """

    ACK_DELAY = 0.02
    BLOCK_SECONDS = 1.0

    def __init__(self, client: _Client, channel: str) -> None:
        self.client = client
        self.channel = channel
        layer = client.layer
        self.queue_key = f"{layer.key_prefix}q:{channel}"
        self.inflight_key = f"{layer.key_prefix}f:{client.id}:{channel}"
        self.registry_member = f"{client.id}:{channel}"
        self.ready: asyncio.Queue[bytes] = asyncio.Queue()
        self.waiting = 0
        self.pending_acks: list[bytes] = []
        # Entries handed to receive_with_ack() callers and not acknowledged yet.
        self.outstanding: Counter[bytes] = Counter()
        self.wake = asyncio.Event()
        self.connection: Connection | None = None
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
                        await self.call([self._ack_commands()])
                    continue
                await self.wake.wait()
            except UNREACHABLE as exc:
                failures += 1
                await self.disconnect()
                self.client.layer._note_outage(exc)
                await asyncio.sleep(self.client.layer.backoff(failures))
            except RedisError:
                logger.exception("Fetching from worker channel %r failed", self.channel)
                await asyncio.sleep(self.client.layer.backoff(1))

    def _ack_commands(self) -> list[Any]:
        acks, self.pending_acks = self.pending_acks, []
        # One LREM per acknowledged entry, packed into a single pipeline by call().
        return [("LREM", self.inflight_key, 1, entry) for entry in acks]

    async def call(self, batches: list[list[Any]]) -> list[Any]:
        commands = [command for batch in batches for command in batch]
        if not commands:
            return []
        if self.connection is None:
            self.connection = await self.client.layer._connect()
            await self.client.ensure_lease()
            await self._return_orphans(self.connection)
            self.client.layer._note_recovery()
        connection = self.connection
        await connection.send_packed_command(connection.pack_commands(commands))
        timeout = self.BLOCK_SECONDS + self.client.layer.command_timeout
        try:
            async with asyncio.timeout(timeout):
                return [await connection.read_response(timeout=math.inf) for _ in commands]
        except TimeoutError as exc:
            raise RedisTimeoutError(f"Redis did not answer within {timeout}s") from exc

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
            commands += [("LREM", self.inflight_key, 1, entry), ("RPUSH", self.queue_key, entry)]
        if commands:
            await connection.send_packed_command(connection.pack_commands(commands))
            for _ in commands:
                await connection.read_response(timeout=math.inf)

    async def fetch(self) -> None:
        block = ("BLMOVE", self.queue_key, self.inflight_key, "RIGHT", "LEFT", self.BLOCK_SECONDS)
        replies = await self.call([self._ack_commands(), [block]])
        entry = replies[-1]
        if entry is None:
            return
        expires_ms = int(entry[:EXPIRY_DIGITS])
        if expires_ms < time.time() * 1000:
            self.pending_acks.append(entry)
            return
        if self.waiting <= self.ready.qsize():
            # Its receiver was cancelled during the BLMOVE: give it back to the queue (at the
            # consuming end) rather than hold it in a process that may never ask again.
            await self.call(
                [[("LREM", self.inflight_key, 1, entry), ("RPUSH", self.queue_key, entry)]]
            )
            return
        self.ready.put_nowait(entry)

    async def disconnect(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(Exception):
                await self.connection.disconnect()
            self.connection = None

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
            commands += [("LREM", self.inflight_key, 1, entry), ("RPUSH", self.queue_key, entry)]
        with contextlib.suppress(*UNREACHABLE, RedisError):
            await self.call([commands])
        await self.disconnect()


class _Client:
    """Everything one event loop holds: connections, local channels, groups, fetchers."""

    def __init__(self, layer: RedisChannelLayer, loop: asyncio.AbstractEventLoop) -> None:
        self.layer = layer
        self.loop = loop
        self.id = secrets.token_hex(6)
        self.commands = _CommandConnection(layer)
        self.channels: dict[str, _LocalChannel] = {}
        # group -> {local channel: joined at (time.time())}
        self.groups: dict[str, dict[str, float]] = {}
        self.oldest_join: dict[str, float] = {}
        self.inbox = f"{layer.key_prefix}i:{self.id}".encode()
        self.membership_key = f"{layer.key_prefix}m:{self.id}"
        # pub/sub channel -> group, and the pending/confirmed subscriptions
        self.topics: dict[bytes, str] = {}
        self.subscribed: dict[bytes, asyncio.Future[None]] = {}
        self.pubsub: Connection | None = None
        self.listener: asyncio.Task[None] | None = None
        self.first_attempt = asyncio.Event()
        self.fetchers: dict[str, _Fetcher] = {}
        self.lease_task: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Future[Any]] = set()
        # "group:channel" memberships that came from other processes (kept in membership_key)
        self.remote_members: set[str] = set()
        self.next_sweep = time.monotonic() + min(layer.expiry, 60)
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

    def local(self, channel: str) -> _LocalChannel:
        entry = self.channels.get(channel)
        if entry is None:
            entry = self.channels[channel] = _LocalChannel(self.layer.get_capacity(channel))
        return entry

    def deliver(self, channel: str, payload: bytes, expires_at: float) -> bool:
        """Queue a plain payload on a local channel; False (and a counted drop) when full."""
        entry = self.local(channel)
        if entry.full():
            self.layer.dropped += 1
            return False
        entry.put(expires_at, payload)
        return True

    # -- pub/sub ----------------------------------------------------------------------------------

    async def listen(self) -> None:
        """Start the pub/sub connection once, and wait for its first connection attempt."""
        if self.listener is None:
            self.listener = asyncio.ensure_future(self._listen())
        if not self.first_attempt.is_set():
            await asyncio.shield(self.first_attempt.wait())

    async def _listen(self) -> None:
        failures = 0
        while not self.closed:
            connection = None
            connected_at = math.inf
            try:
                connection = await self.layer._connect()
                connected_at = time.monotonic()
                self.pubsub = connection
                topics = [self.inbox, *self.topics]
                for topic in topics:
                    self.subscribed.setdefault(topic, self.loop.create_future())
                await connection.send_command("SUBSCRIBE", *topics)
                await self._read(connection)
            except asyncio.CancelledError:
                raise
            except UNREACHABLE as exc:
                failures += 1
                self.layer._note_outage(exc)
            except Exception:
                failures += 1
                logger.exception("Channel layer pub/sub listener failed; reconnecting")
            finally:
                self.pubsub = None
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
            if time.monotonic() - connected_at > self.layer.reconnect_max_delay:
                failures = 1  # it ran for a while: start the back-off afresh
            if not self.closed:
                await asyncio.sleep(self.layer.backoff(failures))

    async def _read(self, connection: Connection) -> None:
        topics = self.topics
        inbox = self.inbox
        interval = self.layer.health_check_interval
        pinged = False
        while True:
            if time.monotonic() >= self.next_sweep:
                self.sweep()
            reply = await connection.read_response(timeout=interval)
            if reply is None:
                # Quiet for a whole interval: a PING tells a quiet Redis from a dead link.
                if pinged:
                    raise RedisTimeoutError(f"no answer to PING within {interval}s")
                pinged = True
                await connection.send_command("PING")
                continue
            pinged = False
            kind = reply[0]
            if kind == b"message":
                topic = reply[1]
                if topic == inbox:
                    self._on_inbox(reply[2])
                else:
                    group = topics.get(topic)
                    if group is not None:
                        self._fan_out(group, reply[2])
            elif kind == b"subscribe":
                future = self.subscribed.get(reply[1])
                if future is not None and not future.done():
                    future.set_result(None)
                if reply[1] == inbox:
                    self.first_attempt.set()
                    self.background(self._reload_memberships())

    async def subscribe(self, group: str) -> None:
        topic = self.layer.group_topic(group)
        self.topics[topic] = group
        if self.listener is None:
            await self.listen()
        future = self.subscribed.get(topic)
        if future is None:
            connection = self.pubsub
            if connection is None:
                return  # subscribed on reconnect
            future = self.subscribed[topic] = self.loop.create_future()
            try:
                await connection.send_command("SUBSCRIBE", topic)
            except UNREACHABLE:
                return
        await asyncio.shield(future)

    async def unsubscribe(self, group: str) -> None:
        if group in self.groups:
            return  # a member joined again before this ran
        topic = self.layer.group_topic(group)
        self.topics.pop(topic, None)
        future = self.subscribed.pop(topic, None)
        connection = self.pubsub
        if future is not None and connection is not None:
            with contextlib.suppress(*UNREACHABLE):
                await connection.send_command("UNSUBSCRIBE", topic)

    def _fan_out(self, group: str, sealed: bytes) -> None:
        members = self.groups.get(group)
        if not members:
            return
        try:
            payload = self.layer.codec.open(sealed)
        except Exception:
            self.layer._undecryptable(group)
            return
        now = time.time()
        if now - self.oldest_join.get(group, now) > self.layer.group_expiry:
            self._expire_members(group, now)
            members = self.groups.get(group) or {}
        expires_at = now + self.layer.expiry
        channels = self.channels
        for name in members:
            entry = channels.get(name)
            if entry is None:
                entry = self.local(name)
            if entry.full():
                self.layer.dropped += 1
            else:
                entry.put(expires_at, payload)

    def _expire_members(self, group: str, now: float) -> None:
        members = self.groups.get(group, {})
        limit = now - self.layer.group_expiry
        for name in [name for name, joined in members.items() if joined < limit]:
            self.remove_member(group, name)
        if group in self.groups:
            self.oldest_join[group] = min(self.groups[group].values())

    def _on_inbox(self, frame: bytes) -> None:
        kind = frame[:1]
        if kind == b"m":
            channel, _, sealed = frame[1:].partition(b"\x00")
            expires_ms, payload = sealed[:EXPIRY_DIGITS], sealed[EXPIRY_DIGITS:]
            try:
                plain = self.layer.codec.open(payload)
            except Exception:
                self.layer._undecryptable(channel.decode())
                return
            self.deliver(channel.decode(), plain, int(expires_ms) / 1000)
        elif kind == b"a":
            group, _, rest = frame[1:].partition(b"\x00")
            channel, _, joined = rest.partition(b"\x00")
            self._add_and_subscribe(group.decode(), channel.decode(), float(joined))
        elif kind == b"d":
            group, _, channel = frame[1:].partition(b"\x00")
            self.remove_member(group.decode(), channel.decode())

    async def _reload_memberships(self) -> None:
        """Apply memberships other processes stored for this client's channels."""
        try:
            (flat,) = await self.commands.execute(("HGETALL", self.membership_key))
        except (LayerUnavailableError, RedisError):
            return
        limit = time.time() - self.layer.group_expiry
        for field, joined in zip(flat[::2], flat[1::2], strict=True):
            group, _, channel = field.decode().partition(":")
            if float(joined) >= limit:
                self._add_and_subscribe(group, channel, float(joined))

    def _add_and_subscribe(self, group: str, channel: str, joined: float) -> None:
        """Apply a membership another process stored in this client's hash."""
        self.remote_members.add(f"{group}:{channel}")
        if self.add_member(group, channel, joined):
            self.background(self.subscribe(group))

    async def forget_remote_member(self, group: str, channel: str) -> None:
        """Delete a membership from this client's hash once it was left here, so a reconnect
        does not bring it back."""
        field = f"{group}:{channel}"
        if field in self.remote_members:
            self.remote_members.discard(field)
            with contextlib.suppress(LayerUnavailableError, RedisError):
                await self.commands.execute(("HDEL", self.membership_key, field))

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

    def sweep(self) -> None:
        """Drop local channels nobody reads whose messages all expired (their consumer went
        away without a trace), so a long-running process does not collect them."""
        now = time.time()
        self.next_sweep = time.monotonic() + min(self.layer.expiry, 60)
        for channel, entry in list(self.channels.items()):
            if not entry.waiting and entry.latest_expiry < now and entry.messages:
                entry.messages.clear()
                self.forget_if_idle(channel, entry)

    def forget_if_idle(self, channel: str, entry: _LocalChannel) -> None:
        """Drop a local channel nobody waits on, with no messages and no groups (a later send
        creates it again), so finished consumers leave nothing behind."""
        if not entry.waiting and not entry.groups and not entry.messages:
            self.channels.pop(channel, None)

    # -- worker channels --------------------------------------------------------------------------

    def fetcher(self, channel: str) -> _Fetcher:
        fetcher = self.fetchers.get(channel)
        if fetcher is None:
            fetcher = self.fetchers[channel] = _Fetcher(self, channel)
            if self.lease_task is None:
                self.lease_task = asyncio.ensure_future(self._keep_lease())
        return fetcher

    async def ensure_lease(self) -> None:
        """Mark this client alive and register its in-flight lists (idempotent)."""
        layer = self.layer
        lease_ms = int(layer.worker_lease * 1000)
        commands: list[tuple[Any, ...]] = [
            ("SET", f"{layer.key_prefix}alive:{self.id}", 1, "PX", lease_ms)
        ]
        for fetcher in self.fetchers.values():
            commands.append(("SADD", layer.inflight_registry, fetcher.registry_member))
        await self.commands.execute(*commands)

    async def _keep_lease(self) -> None:
        next_recovery = 0.0
        failures = 0
        while not self.closed:
            try:
                await self.ensure_lease()
                if time.monotonic() >= next_recovery:
                    moved = await self.layer.recover()
                    if moved:
                        logger.warning(
                            "Returned %d unacknowledged message(s) of dead workers to their queues",
                            moved,
                        )
                    next_recovery = time.monotonic() + self.layer.worker_lease
                failures = 0
                await asyncio.sleep(self.layer.worker_lease / 3)
            except asyncio.CancelledError:
                raise
            except (LayerUnavailableError, *UNREACHABLE, RedisError) as exc:
                failures += 1
                self.layer._note_outage(exc)
                await asyncio.sleep(self.layer.backoff(failures))

    # -- shutdown ---------------------------------------------------------------------------------

    async def close(self) -> None:
        self.closed = True
        for fetcher in list(self.fetchers.values()):
            await fetcher.close()
        self.fetchers.clear()
        tasks = [task for task in (self.listener, self.lease_task) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if self.lease_task is not None:
            with contextlib.suppress(LayerUnavailableError, RedisError):
                await self.commands.execute(("DEL", f"{self.layer.key_prefix}alive:{self.id}"))
        for pending in list(self.tasks):
            pending.cancel()
        await self.commands.close()


class RedisChannelLayer(BaseChannelLayer):
    """The Redis channel layer: see the module docstring for the design and the guarantees."""

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
    ) -> None:
        super().__init__(
            expiry=expiry,
            capacity=capacity,
            channel_capacity=channel_capacity,
            group_expiry=group_expiry,
        )
        hosts = list(hosts or ["redis://127.0.0.1:6379/0"])
        if len(hosts) != 1:
            raise ValueError(
                f"RedisChannelLayer talks to one Redis server (use Redis Sentinel or a bigger "
                f"server to scale), got {len(hosts)} hosts: {hosts!r}"
            )
        self.url, self.connection_options = _pool_kwargs(hosts[0])
        self.master_name: str | None = self.connection_options.pop("master_name", None)
        self.sentinels: list[tuple[str, int]] = [
            (host, int(port)) for host, port in self.connection_options.pop("sentinels", [])
        ]
        self.sentinel_kwargs: dict[str, Any] = self.connection_options.pop("sentinel_kwargs", {})
        if self.master_name is not None and not self.sentinels:
            raise ValueError(f"master_name {self.master_name!r} needs a list of sentinels")
        self.prefix = prefix
        self.key_prefix = f"{prefix}:"
        self.codec = MessageCodec(symmetric_encryption_keys)
        self.worker_lease = worker_lease
        self.reconnect_max_delay = reconnect_max_delay
        self.socket_connect_timeout = socket_connect_timeout
        self.command_timeout = command_timeout
        self.health_check_interval = health_check_interval
        self.inflight_registry = f"{self.key_prefix}inflight"
        self.undecryptable = 0
        self._clients: dict[asyncio.AbstractEventLoop, _Client] = {}
        self._in_outage = False
        self._connection_template = self._make_template()

    # -- plumbing ---------------------------------------------------------------------------------

    def _make_template(self) -> ConnectionPool:
        """Holds the connection class and kwargs parsed from the URL; never connects itself."""
        options = {
            "socket_connect_timeout": self.socket_connect_timeout,
            "socket_keepalive": True,
            # RESP2: pub/sub messages arrive as plain replies on our dedicated connection.
            "protocol": 2,
            **self.connection_options,
        }
        if self.url:
            return ConnectionPool.from_url(self.url, **options)
        return ConnectionPool(**options)

    async def _connect(self) -> Connection:
        """A new connection to Redis (commands, pub/sub or blocking fetches); with Sentinel, to
        the master the sentinels name now (asked again on every reconnect, so a failover is
        followed)."""
        template = self._connection_template
        options = dict(template.connection_kwargs)
        if self.master_name is not None:
            options["host"], options["port"] = await self._discover_master()
        connection = template.connection_class(**options)
        await connection.connect()
        return connection  # type: ignore[return-value]  # Connection or its SSL/Unix siblings

    async def _discover_master(self) -> tuple[str, int]:
        from redis.asyncio.sentinel import Sentinel

        assert self.master_name is not None
        sentinel = Sentinel(
            self.sentinels,
            sentinel_kwargs={"socket_connect_timeout": self.socket_connect_timeout}
            | self.sentinel_kwargs,
        )
        try:
            host, port = await sentinel.discover_master(self.master_name)
        finally:
            for client in sentinel.sentinels:
                with contextlib.suppress(Exception):
                    await client.aclose()
        return host, int(port)

    def _unavailable(self, exc: BaseException) -> LayerUnavailableError:
        self._note_outage(exc)
        return LayerUnavailableError(
            f"Redis at {self.location} is unreachable ({exc}); nothing was sent"
        )

    def backoff(self, failures: int) -> float:
        """Seconds to wait after ``failures`` consecutive failures: 0.05 s doubling, capped."""
        return min(self.reconnect_max_delay, 0.05 * 2 ** min(failures, 16))

    def _note_outage(self, exc: BaseException) -> None:
        if not self._in_outage:
            self._in_outage = True
            logger.warning("Redis at %s is unreachable (%s); reconnecting", self.location, exc)

    def _note_recovery(self) -> None:
        if self._in_outage:
            self._in_outage = False
            logger.info("Redis at %s is reachable again", self.location)

    def _undecryptable(self, where: str) -> None:
        self.undecryptable += 1
        logger.error("Dropped a message for %r that no configured key decrypts", where)

    @property
    def location(self) -> str:
        if self.master_name is not None:
            return f"sentinel master {self.master_name!r}"
        if self.url:
            return self.url
        return f"{self.connection_options.get('host', '127.0.0.1')}:" + str(
            self.connection_options.get("port", 6379)
        )

    def _client(self) -> _Client:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = _Client(self, loop)
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

    async def _script(self, client: _Client, script: str, sha: str, *args: Any) -> Any:
        (result,) = await self._scripts(client, script, sha, [args])
        return result

    async def _scripts(
        self, client: _Client, script: str, sha: str, calls: list[tuple[Any, ...]]
    ) -> list[Any]:
        """EVALSHA for each argument tuple in one pipeline, loading the script when Redis does
        not know it (first use, after a restart). Redis's script cache is global, so either
        every call of the pipeline ran or none did."""
        commands = [("EVALSHA", sha, *args) for args in calls]
        try:
            return await client.commands.execute(*commands)
        except NoScriptError:
            pass
        await client.commands.execute(("SCRIPT", "LOAD", script))
        return await client.commands.execute(*commands)

    def group_topic(self, group: str) -> bytes:
        return f"{self.key_prefix}g:{group}".encode()

    def owner_of(self, channel: str) -> str:
        """The client id in a process-local channel name (``"specific.<id>!..."``)."""
        return channel[: channel.find("!")].rpartition(".")[2]

    def _entry(self, plain: bytes) -> bytes:
        expires_ms = int((time.time() + self.expiry) * 1000)
        return b"%013d" % expires_ms + self.codec.seal(plain)

    async def recover(self) -> int:
        """Return in-flight messages of clients whose lease ran out to their queues."""
        client = self._client()
        return await self._script(
            client, RECOVER_SCRIPT, RECOVER_SHA, 1, self.inflight_registry, self.key_prefix
        )

    # -- the contract -----------------------------------------------------------------------------

    async def send(self, channel: str, message: Message) -> None:
        """Queue ``message`` on ``channel``. ChannelFull at capacity (for process-local channels
        of another process, the owner drops instead: see the module docstring);
        LayerUnavailableError when Redis is needed and unreachable."""
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
            inbox = f"{self.key_prefix}i:{self.owner_of(channel)}"
            frame = b"m" + channel.encode() + b"\x00" + self._entry(plain)
            await client.commands.execute(("PUBLISH", inbox, frame))
            return
        capacity = self.get_capacity(channel)
        queued = await self._script(
            client,
            SEND_SCRIPT,
            SEND_SHA,
            1,
            f"{self.key_prefix}q:{channel}",
            self._entry(plain),
            capacity,
            int((self.expiry + 1) * 1000),
            int(time.time() * 1000),
        )
        if not queued:
            raise ChannelFull(f"Channel {channel!r} is full ({capacity} undelivered messages)")

    async def receive(self, channel: str) -> Message:
        """The next message on ``channel`` (acknowledged: see the module docstring)."""
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
            plain = self.codec.open(entry[EXPIRY_DIGITS:])
        except Exception:
            self._undecryptable(channel)
            return None
        return self.codec.unpack(plain)

    async def _receive_local(self, client: _Client, channel: str) -> Message:
        if client.listener is None:
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
        if client.listener is None:
            await client.listen()
        return name

    async def group_add(self, group: str, channel: str) -> None:
        """Add ``channel`` to ``group`` (renewing the membership if it is one already)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        client = self._client()
        now = time.time()
        if "!" not in channel:
            key = f"{self.key_prefix}gw:{group}"
            await client.commands.execute(
                ("ZADD", key, now, channel), ("EXPIRE", key, int(self.group_expiry) + 1)
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
        membership_key = f"{self.key_prefix}m:{owner}"
        await client.commands.execute(
            ("HSET", membership_key, f"{group}:{channel}", repr(now)),
            ("EXPIRE", membership_key, int(self.group_expiry) + 1),
            (
                "PUBLISH",
                f"{self.key_prefix}i:{owner}",
                b"a%s\x00%s\x00%s" % (group.encode(), channel.encode(), repr(now).encode()),
            ),
        )

    async def group_discard(self, group: str, channel: str) -> None:
        """Remove ``channel`` from ``group`` (nothing happens if it is not a member)."""
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        client = self._client()
        if "!" not in channel:
            await client.commands.execute(("ZREM", f"{self.key_prefix}gw:{group}", channel))
            return
        if client.owns(channel):
            client.remove_member(group, channel)
            await client.forget_remote_member(group, channel)
            return
        owner = self.owner_of(channel)
        await client.commands.execute(
            ("HDEL", f"{self.key_prefix}m:{owner}", f"{group}:{channel}"),
            (
                "PUBLISH",
                f"{self.key_prefix}i:{owner}",
                b"d%s\x00%s" % (group.encode(), channel.encode()),
            ),
        )

    async def group_send(self, group: str, message: Message) -> None:
        """Send ``message`` to every member of ``group``: one PUBLISH for the process-local
        members of every process, plus a queued copy for each worker-channel member. A full
        member misses it alone (counted in ``stats()["dropped"]``)."""
        self.require_valid_group_name(group)
        self.require_valid_message(message)
        plain = self.codec.pack(message)
        sealed = self.codec.seal(plain)
        client = self._client()
        workers_key = f"{self.key_prefix}gw:{group}"
        _, workers = await client.commands.execute(
            ("PUBLISH", self.group_topic(group), sealed),
            ("ZRANGEBYSCORE", workers_key, time.time() - self.group_expiry, "+inf"),
        )
        if workers:
            await self._send_to_workers(client, group, [w.decode() for w in workers], plain)

    async def _send_to_workers(
        self, client: _Client, group: str, channels: list[str], plain: bytes
    ) -> None:
        entry = self._entry(plain)
        now_ms = int(time.time() * 1000)
        ttl_ms = int((self.expiry + 1) * 1000)
        calls = [
            (1, f"{self.key_prefix}q:{name}", entry, self.get_capacity(name), ttl_ms, now_ms)
            for name in channels
        ]
        results = await self._scripts(client, SEND_SCRIPT, SEND_SHA, calls)
        self.dropped += sum(1 for queued in results if not queued)
        limit = time.time() - self.group_expiry
        await client.commands.execute(
            ("ZREMRANGEBYSCORE", f"{self.key_prefix}gw:{group}", "-inf", limit)
        )

    async def flush(self) -> None:
        """Delete every key under the prefix and forget this process's channels and groups."""
        client = self._client()
        cursor = 0
        while True:
            ((cursor, keys),) = await client.commands.execute(
                ("SCAN", cursor, "MATCH", f"{self.key_prefix}*", "COUNT", 1000)
            )
            if keys:
                await client.commands.execute(("UNLINK", *keys))
            if int(cursor) == 0:
                break
        for fetcher in list(client.fetchers.values()):
            while not fetcher.ready.empty():
                fetcher.ready.get_nowait()
            fetcher.pending_acks.clear()
        for group in list(client.groups):
            for channel in list(client.groups[group]):
                client.remove_member(group, channel)
        for channel, entry in list(client.channels.items()):
            entry.messages.clear()
            client.forget_if_idle(channel, entry)

    async def close(self) -> None:
        """Close this event loop's connections (other loops' clients close with their loops)."""
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.close()
        for other in list(self._clients):
            if other.is_closed():
                self._clients.pop(other, None)

    def stats(self) -> dict[str, int]:
        return {"dropped": self.dropped, "undecryptable": self.undecryptable}


async def _acknowledged() -> None:
    """The acknowledgement of a process-local message: nothing to do, it is not durable."""


__all__ = ["LayerUnavailableError", "MessageCodec", "RedisChannelLayer"]
