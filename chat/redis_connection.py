"""The chat app's Redis client for shared state (rate windows, presence) when REDIS_URL is set.

redis.asyncio connections belong to the event loop that opened them, so there is one client per
running loop (Daphne has one; tests start several). Its pool holds at most MAX_CONNECTIONS; more
callers at once wait their turn (up to the socket timeout) instead of opening more: a burst of
200 sockets joining a room had opened 85 connections to Redis, one per presence call in flight.
"""

from __future__ import annotations

import asyncio
import weakref

from django.conf import settings
from redis.asyncio import BlockingConnectionPool, Redis

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, Redis]] = (
    weakref.WeakKeyDictionary()
)

KEY_PREFIX = "switchboard:chat:"
MAX_CONNECTIONS = 16
TIMEOUT_SECONDS = 2


def shared_redis() -> Redis | None:
    """The Redis client for this event loop, or None when settings.REDIS_URL is empty."""
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    loop = asyncio.get_running_loop()
    cached = _clients.get(loop)
    if cached is None or cached[0] != url:
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=TIMEOUT_SECONDS,
            socket_timeout=TIMEOUT_SECONDS,
            socket_connect_timeout=TIMEOUT_SECONDS,
        )
        client = Redis(connection_pool=pool)
        _clients[loop] = (url, client)
        return client
    return cached[1]
