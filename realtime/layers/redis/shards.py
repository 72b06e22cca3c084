"""Which Redis server holds a name: one server, a list of independent servers, or a Redis Cluster.

Every key and pub/sub channel has a routing token (``wire.KeySpace``): the worker channel for a
queue and its in-flight lists, the group for its pub/sub channel and worker members, the client id
for its inbox and membership hash. A shard map turns a token into a ``Server``.

- ``OneServer``: everything on one server (or one Sentinel-managed master).
- ``RendezvousShards`` (``"hosts": [a, b, c]``): rendezvous (highest random weight) hashing. Each
  server scores each token with a stable hash of (server name, token); the highest score owns
  it. Adding a server moves only the tokens it now wins (about 1/n of them), removing one moves
  only its own. The server's name is its URL as written (or ``host:port``), so every process
  must list the same hosts, spelled the same way.
- ``ClusterShards`` (``"cluster": "redis://node:7000"``): the token's hash slot (CRC16 of the hash
  tag, as Redis Cluster computes it) and the cluster's slot table, read with ``CLUSTER SLOTS``
  from any known node and read again whenever a node answers ``MOVED`` (see ``routing.py``).
  Pub/sub is sharded (``SSUBSCRIBE``/``SPUBLISH``), so a group's messages stay on the master that
  owns its slot instead of being broadcast over the whole cluster bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import time
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from redis.exceptions import RedisError

from realtime.layers.redis.connection import UNREACHABLE, Server, Timeouts

logger = logging.getLogger("realtime.layers.redis")


class OneServer:
    """Every name on one server."""

    sharded_pubsub = False

    def __init__(self, server: Server) -> None:
        self.server = server
        self.servers = [server]

    def server_for(self, token: str) -> Server:
        return self.server

    async def refresh(self) -> None:
        """Nothing to learn: there is one server."""

    def refresh_soon(self) -> None:
        """Nothing to learn: there is one server."""


class RendezvousShards:
    """Names spread over independent servers by rendezvous hashing (see the module docstring)."""

    sharded_pubsub = False

    def __init__(self, servers: Sequence[Server]) -> None:
        names = [server.name for server in servers]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"hosts lists the same server more than once: {duplicates}")
        self.servers = list(servers)
        seeds = [server.name.encode() + b"\x00" for server in self.servers]

        @lru_cache(maxsize=65536)
        def owner(token: str) -> Server:
            raw = token.encode()
            scores = [hashlib.blake2b(seed + raw, digest_size=8).digest() for seed in seeds]
            return self.servers[scores.index(max(scores))]

        self.server_for = owner

    async def refresh(self) -> None:
        """Nothing to learn: the host list is the configuration."""

    def refresh_soon(self) -> None:
        """Nothing to learn: the host list is the configuration."""


class ClusterShards:
    """Names on the masters of a Redis Cluster, by hash slot (see the module docstring)."""

    sharded_pubsub = True
    REFRESH_INTERVAL = 0.2  # at most one CLUSTER SLOTS per this many seconds

    def __init__(self, seeds: Sequence[str | Mapping[str, Any]], timeouts: Timeouts) -> None:
        if not seeds:
            raise ValueError("cluster needs at least one node URL, e.g. 'redis://node:7000'")
        self.timeouts = timeouts
        self.seed_hosts = list(seeds)
        self.seeds = [Server(seed, timeouts) for seed in self.seed_hosts]
        for seed in self.seeds:
            if seed.master_name is not None:
                raise ValueError("cluster nodes are named by URL, not through Sentinel")
        # Servers by (host, port): one object per node, so per-server state is shared.
        self.nodes: dict[tuple[str, int], Server] = {seed.address: seed for seed in self.seeds}
        self.slots: list[Server | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
        self.refreshing: asyncio.Future[None] | None = None
        self.refreshed_at = -math.inf

    @property
    def servers(self) -> list[Server]:
        """The masters that own slots now (the seeds before the first refresh)."""
        owners = {id(server): server for server in self.slots if server is not None}
        return list(owners.values()) or list(self.seeds)

    def server_for(self, token: str) -> Server:
        return self.server_for_slot(key_slot(token.encode()))

    def unserved_slots(self) -> int:
        """How many slots the last slot table read gave no master (0 before the first read)."""
        if self.refreshed_at == -math.inf:
            return 0
        return self.slots.count(None)

    def server_for_slot(self, slot: int) -> Server:
        server = self.slots[slot]
        # Unknown before the first refresh: any node answers MOVED with the owner.
        return server if server is not None else self.seeds[0]

    def node(self, host: str, port: int) -> Server:
        """The Server for a node address (created on first sight, sharing the seed's settings)."""
        server = self.nodes.get((host, port))
        if server is None:
            server = self.nodes[(host, port)] = Server(
                self.seed_hosts[0], self.timeouts, address=(host, port)
            )
        return server

    def moved(self, slot: int, host: str, port: int) -> Server:
        """Record what a MOVED reply said, and return the new owner."""
        server = self.slots[slot] = self.node(host, port)
        return server

    def refresh_soon(self) -> asyncio.Future[None] | None:
        """Start reading the slot table again unless a read is running or just ran; the read
        running now, if any."""
        if self.refreshing is None or self.refreshing.done():
            if time.monotonic() - self.refreshed_at < self.REFRESH_INTERVAL:
                return None
            self.refreshing = asyncio.ensure_future(self._refresh())
        return self.refreshing

    async def refresh(self) -> None:
        """Read the slot table again (concurrent callers share one read; rate-limited)."""
        refreshing = self.refresh_soon()
        if refreshing is not None:
            await asyncio.shield(refreshing)

    async def _refresh(self) -> None:
        candidates = list(
            {id(s): s for s in [*self.servers, *self.seeds, *self.nodes.values()]}.values()
        )
        last_error: BaseException | None = None
        for server in candidates:
            try:
                table = await self._slot_table(server)
            except (*UNREACHABLE, RedisError) as exc:
                last_error = exc
                continue
            slots: list[Server | None] = [None] * REDIS_CLUSTER_HASH_SLOTS
            for start, end, master, *_replicas in table:
                host = master[0].decode() if isinstance(master[0], bytes) else master[0]
                owner = self.node(host or server.address[0], int(master[1]))
                for slot in range(int(start), int(end) + 1):
                    slots[slot] = owner
            self.slots = slots
            self.refreshed_at = time.monotonic()
            return
        self.refreshed_at = time.monotonic()
        logger.warning("No cluster node answered CLUSTER SLOTS (%s)", last_error)

    @staticmethod
    async def _slot_table(server: Server) -> list[Any]:
        connection = await server.connect()
        try:
            async with asyncio.timeout(server.timeouts.command):
                await connection.send_command("CLUSTER", "SLOTS")
                return await connection.read_response()
        finally:
            with contextlib.suppress(Exception):
                await connection.disconnect()


ShardMap = OneServer | RendezvousShards | ClusterShards
