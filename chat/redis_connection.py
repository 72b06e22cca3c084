"""The chat app's Redis client for shared state (rate windows, presence) when REDIS_URL is set.

redis.asyncio connections belong to the event loop that opened them, so there is one client per
running loop (Daphne has one; tests start several).
"""

from __future__ import annotations

import asyncio
import weakref

from django.conf import settings
from redis.asyncio import Redis

_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[str, Redis]] = (
    weakref.WeakKeyDictionary()
)

KEY_PREFIX = "switchboard:chat:"


def shared_redis() -> Redis | None:
    """The Redis client for this event loop, or None when settings.REDIS_URL is empty."""
    url = getattr(settings, "REDIS_URL", "")
    if not url:
        return None
    loop = asyncio.get_running_loop()
    cached = _clients.get(loop)
    if cached is None or cached[0] != url:
        client = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        _clients[loop] = (url, client)
        return client
    return cached[1]
