"""One Redis server as the layer sees it: how to connect (URL, kwargs or Sentinel), the back-off
while it is away, whether it is away right now, and the pipelined command connection.

A ``Server`` is one shard: a host of the ``hosts`` list, a cluster master, or the master a set of
sentinels names. Its outage state is its own, so a shard that goes away is logged (once, at
WARNING; its return at INFO) and reported (``LayerUnavailableError`` naming it) on its own while
the other shards keep working.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from redis.asyncio.connection import Connection, ConnectionPool
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from realtime.backoff import Backoff
from realtime.exceptions import LayerUnavailableError

logger = logging.getLogger("realtime.layers.redis")

# Errors that mean "Redis is not there right now".
UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError, EOFError)


# Waits between reconnects to a server: 50 ms doubling up to the layer's reconnect_max_delay
# (the core's one back-off, realtime.backoff).
RECONNECT_INITIAL_DELAY = 0.05


def reconnect_backoff(maximum: float) -> Backoff:
    return Backoff(initial=min(RECONNECT_INITIAL_DELAY, maximum), maximum=maximum)


@dataclass(frozen=True)
class Timeouts:
    """How long the layer waits on a server: to connect, for a reply, and how quiet a pub/sub
    connection may be before a PING checks it."""

    connect: float = 5.0
    command: float = 10.0
    health_check: float = 15.0


def connection_options(host: str | Mapping[str, Any]) -> tuple[str | None, dict[str, Any]]:
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


class Server:
    """One Redis server (or Sentinel-managed master): connects, and tracks its own outages."""

    def __init__(
        self,
        host: str | Mapping[str, Any],
        timeouts: Timeouts,
        address: tuple[str, int] | None = None,
    ) -> None:
        """``host`` is a ``hosts`` entry; ``address`` overrides its host and port (a cluster
        node found through the seed, which lends its URL's password and TLS settings)."""
        url, options = connection_options(host)
        self.master_name: str | None = options.pop("master_name", None)
        self.sentinels: list[tuple[str, int]] = [
            (name, int(port)) for name, port in options.pop("sentinels", [])
        ]
        self.sentinel_kwargs: dict[str, Any] = options.pop("sentinel_kwargs", {})
        if self.master_name is not None and not self.sentinels:
            raise ValueError(f"master_name {self.master_name!r} needs a list of sentinels")
        self.timeouts = timeouts
        template_options = {
            "socket_connect_timeout": timeouts.connect,
            "socket_keepalive": True,
            # RESP2: pub/sub messages arrive as plain replies on our dedicated connections.
            "protocol": 2,
            **options,
        }
        # Holds the connection class and kwargs parsed from the URL; never connects itself.
        template = (
            ConnectionPool.from_url(url, **template_options)
            if url
            else ConnectionPool(**template_options)
        )
        self.connection_class = template.connection_class
        self.connection_kwargs = dict(template.connection_kwargs)
        if address is not None:
            self.connection_kwargs["host"], self.connection_kwargs["port"] = address
        self.name = self._describe(url if address is None else None)
        self.in_outage = False

    def _describe(self, url: str | None) -> str:
        if self.master_name is not None:
            return f"sentinel master {self.master_name!r}"
        if url:
            return url
        kwargs = self.connection_kwargs
        if "path" in kwargs:
            return f"unix://{kwargs['path']}"
        return f"{kwargs.get('host', '127.0.0.1')}:{kwargs.get('port', 6379)}"

    def __repr__(self) -> str:
        return f"<Server {self.name}>"

    @property
    def address(self) -> tuple[str, int]:
        return self.connection_kwargs.get("host", "127.0.0.1"), int(
            self.connection_kwargs.get("port", 6379)
        )

    async def connect(self) -> Connection:
        """A new connection (commands, pub/sub or blocking fetches); with Sentinel, to the
        master the sentinels name now (asked on every reconnect, so a failover is followed)."""
        options = dict(self.connection_kwargs)
        if self.master_name is not None:
            options["host"], options["port"] = await self._discover_master()
        connection = self.connection_class(**options)
        await connection.connect()
        return connection  # type: ignore[return-value]  # Connection or its SSL/Unix siblings

    async def _discover_master(self) -> tuple[str, int]:
        from redis.asyncio.sentinel import Sentinel

        assert self.master_name is not None
        sentinel = Sentinel(
            self.sentinels,
            sentinel_kwargs={"socket_connect_timeout": self.timeouts.connect}
            | self.sentinel_kwargs,
        )
        try:
            host, port = await sentinel.discover_master(self.master_name)
        finally:
            for client in sentinel.sentinels:
                with contextlib.suppress(Exception):
                    await client.aclose()
        return host, int(port)

    def unavailable(self, exc: BaseException) -> LayerUnavailableError:
        """The error for an operation this server could not take (and logs the outage)."""
        self.note_outage(exc)
        return LayerUnavailableError(
            f"Redis at {self.name} is unreachable ({exc}); nothing was sent"
        )

    def note_outage(self, exc: BaseException) -> None:
        if not self.in_outage:
            self.in_outage = True
            logger.warning("Redis at %s is unreachable (%s); reconnecting", self.name, exc)

    def note_recovery(self) -> None:
        if self.in_outage:
            self.in_outage = False
            logger.info("Redis at %s is reachable again", self.name)


class CommandConnection:
    """One connection to one server for every command of a client (all but pub/sub and
    blocking fetches).

    Commands from any number of tasks are written in order and their replies matched in order
    (Redis answers in order), so concurrent callers share the connection and their commands go
    out pipelined, with no pool checkout per call.
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.connection: Connection | None = None
        self.replies: deque[asyncio.Future[Any]] = deque()
        self.reader: asyncio.Task[None] | None = None
        self.connecting: asyncio.Future[Connection] | None = None

    async def execute(self, *commands: tuple[Any, ...], raise_errors: bool = True) -> list[Any]:
        """Replies to ``commands`` (sent as one pipeline). A Redis error reply raises
        ResponseError after every reply arrived (or is returned in its place when
        ``raise_errors`` is false); losing the connection raises LayerUnavailableError."""
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
        server = self.server
        try:
            # The write happens before this coroutine first yields, so the order of `replies`
            # is the order on the wire.
            await connection.send_packed_command(
                connection.pack_commands(commands), check_health=False
            )
        except UNREACHABLE as exc:
            self._lost(connection, exc)
            raise server.unavailable(exc) from exc
        results = []
        try:
            async with asyncio.timeout(server.timeouts.command):
                for future in futures:
                    results.append(await future)
        except UNREACHABLE as exc:
            raise server.unavailable(exc) from exc
        except TimeoutError as exc:
            # Redis hangs (or the network does): give up on this connection.
            self._lost(connection, exc)
            raise server.unavailable(exc) from exc
        for result in results:
            if isinstance(result, ResponseError):
                if str(result).startswith("READONLY"):
                    # A failover turned our server into a replica: find the new master.
                    self._lost(connection, result)
                    raise server.unavailable(result)
                if raise_errors:
                    raise result
        return results

    async def _connect(self) -> Connection:
        if self.connecting is None:
            self.connecting = asyncio.ensure_future(self.server.connect())
        connecting = self.connecting
        try:
            connection = await asyncio.shield(connecting)
        except UNREACHABLE as exc:
            raise self.server.unavailable(exc) from exc
        finally:
            if self.connecting is connecting and connecting.done():
                self.connecting = None
        if self.connection is not connection:
            self.connection = connection
            self.reader = asyncio.ensure_future(self._read(connection))
            self.server.note_recovery()
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
        self.server.note_outage(exc)
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
