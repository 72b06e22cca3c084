"""How many messages one user may post in one room: a sliding window, the one limiter chat uses.

``SWITCHBOARD_CHAT_RATE_LIMIT`` ("10/5": ten messages per five seconds) sets it. With REDIS_URL
set the window lives in Redis (a sorted set per key, updated atomically by a Lua script on the
Redis clock), so every Daphne process counts against the same limit; otherwise it lives in this
process. If Redis fails, the process falls back to its own window rather than refusing or
crashing: chat keeps working, limited per process, and the failure is logged.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import logging
import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import NoScriptError, RedisError

from chat.redis_connection import KEY_PREFIX, shared_redis
from realtime.batching import Batcher

logger = logging.getLogger(__name__)

_SLIDING_WINDOW_SCRIPT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local window_ms = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms - window_ms)
if redis.call('ZCARD', KEYS[1]) >= limit then
  return 0
end
redis.call('ZADD', KEYS[1], now_ms, ARGV[3])
redis.call('PEXPIRE', KEYS[1], window_ms)
return 1
"""

# Hits served by one pipeline at most.
HIT_BATCH_SIZE = 200

# Each hit is one member of the window's sorted set, unique across processes without asking the
# system for random bytes each time: this process's token and a counter.
_PROCESS_TOKEN = secrets.token_hex(6)
_hit_numbers = itertools.count()


def _member() -> str:
    return f"{time.time_ns()}-{_PROCESS_TOKEN}-{next(_hit_numbers)}"


@dataclass(frozen=True)
class RateLimit:
    """At most `count` events per `seconds`."""

    count: int
    seconds: float

    @classmethod
    def parse(cls, value: str) -> RateLimit:
        """Parse "<count>/<seconds>", e.g. "10/5"."""
        try:
            count_text, seconds_text = value.split("/")
            limit = cls(int(count_text), float(seconds_text))
        except ValueError:
            limit = None
        if limit is None or limit.count < 1 or limit.seconds <= 0:
            raise ValueError(f"A rate limit is '<count>/<seconds>' like '10/5', got {value!r}")
        return limit

    def describe(self) -> str:
        seconds = f"{self.seconds:g}"
        return f"At most {self.count} messages per {seconds} seconds."


class RateLimiter:
    """Counts events per key in a sliding window; `hit(key)` says whether one more is allowed.

    With Redis, the hits made while one round trip is in flight go together in the next one
    (one pipeline of script calls, `realtime.batching`): a hundred rooms posting at once are a few
    round trips, not a hundred."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._local: dict[str, collections.deque[float]] = {}
        self._sha = hashlib.sha1(_SLIDING_WINDOW_SCRIPT.encode()).hexdigest()
        self._hits: Batcher[str, bool] = Batcher(self._hit_batch, max_size=HIT_BATCH_SIZE)

    async def hit(self, key: str) -> bool:
        """Record an event for `key` if the window has room and return True; else return False."""
        if shared_redis() is not None:
            try:
                return await self._hits.submit(key)
            except (RedisError, OSError):
                logger.warning("rate limit: Redis unavailable, counting in this process only")
        return self._hit_local(key)

    async def _hit_batch(self, keys: list[str]) -> list[bool | BaseException]:
        """Run the window script for each key, in order, in one pipeline (loading the script
        first if this Redis does not have it yet)."""
        redis = shared_redis()
        if redis is None:
            raise RedisError("no Redis client for this event loop")
        window_ms, count = int(self.limit.seconds * 1000), self.limit.count
        for attempt in range(2):
            async with redis.pipeline(transaction=False) as pipe:
                for key in keys:
                    pipe.evalsha(
                        self._sha, 1, f"{KEY_PREFIX}rate:{key}", window_ms, count, _member()
                    )
                replies = await pipe.execute(raise_on_error=False)
            if attempt == 0 and any(isinstance(r, NoScriptError) for r in replies):
                # A new or flushed Redis; nothing was counted (every call is refused alike).
                await redis.script_load(_SLIDING_WINDOW_SCRIPT)
                continue
            break
        return [r if isinstance(r, BaseException) else bool(r) for r in replies]

    def _hit_local(self, key: str) -> bool:
        now = time.monotonic()
        window = self._local.setdefault(key, collections.deque())
        while window and window[0] <= now - self.limit.seconds:
            window.popleft()
        if len(window) >= self.limit.count:
            return False
        window.append(now)
        if len(self._local) > 10_000:
            self._forget_idle(now)
        return True

    def _forget_idle(self, now: float) -> None:
        horizon = now - self.limit.seconds
        for key in [k for k, w in self._local.items() if not w or w[-1] <= horizon]:
            del self._local[key]


_limiter: RateLimiter | None = None


def message_rate_limiter() -> RateLimiter:
    """The process's limiter for chat messages, following settings.CHAT_RATE_LIMIT."""
    global _limiter
    limit = RateLimit.parse(settings.CHAT_RATE_LIMIT)
    if _limiter is None or _limiter.limit != limit:
        _limiter = RateLimiter(limit)
    return _limiter
