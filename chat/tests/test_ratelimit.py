"""The message rate limiter: parsing the setting, the in-process window, the Redis window that
every process shares."""

import asyncio

import pytest

from chat.ratelimit import RateLimit, RateLimiter


@pytest.mark.parametrize("value", ["10", "a/5", "0/5", "10/0", "10/-1", "1/2/3", ""])
def test_bad_rate_limit_setting_is_refused_with_the_value(value):
    with pytest.raises(ValueError, match="10/5"):
        RateLimit.parse(value)


def test_rate_limit_parses_count_and_seconds():
    assert RateLimit.parse("10/5") == RateLimit(10, 5.0)
    assert RateLimit.parse("3/0.5").describe() == "At most 3 messages per 0.5 seconds."


async def test_in_process_limiter_allows_count_then_refuses(settings):
    settings.REDIS_URL = ""
    limiter = RateLimiter(RateLimit(3, 60))
    assert [await limiter.hit("room:1") for _ in range(4)] == [True, True, True, False]


async def test_keys_are_limited_separately(settings):
    settings.REDIS_URL = ""
    limiter = RateLimiter(RateLimit(1, 60))
    assert await limiter.hit("general:1")
    assert await limiter.hit("general:2")
    assert await limiter.hit("random:1")
    assert not await limiter.hit("general:1")


async def test_window_slides_so_old_events_stop_counting(settings):
    settings.REDIS_URL = ""
    limiter = RateLimiter(RateLimit(1, 0.2))
    assert await limiter.hit("k")
    assert not await limiter.hit("k")
    await asyncio.sleep(0.25)
    assert await limiter.hit("k")


async def test_limiters_of_two_processes_share_the_redis_window(settings, fresh_redis):
    settings.REDIS_URL = fresh_redis.url
    process_a, process_b = RateLimiter(RateLimit(3, 60)), RateLimiter(RateLimit(3, 60))
    results = [await limiter.hit("general:7") for limiter in (process_a, process_b, process_a)]
    assert results == [True, True, True]
    assert not await process_b.hit("general:7")
    assert not await process_a.hit("general:7")


async def test_limiter_falls_back_to_the_process_when_redis_is_down(settings, fresh_redis):
    settings.REDIS_URL = fresh_redis.url
    fresh_redis.stop()
    limiter = RateLimiter(RateLimit(1, 60))
    assert await limiter.hit("k")
    assert not await limiter.hit("k")


async def test_hits_made_together_are_each_counted_once_in_order(settings, fresh_redis):
    """A burst of hits on one key shares a round trip: exactly the first `count` pass."""
    settings.REDIS_URL = fresh_redis.url
    limiter = RateLimiter(RateLimit(3, 60))
    results = await asyncio.gather(*(limiter.hit("general:7") for _ in range(5)))
    assert results == [True, True, True, False, False]
    others = await asyncio.gather(limiter.hit("general:8"), limiter.hit("general:7"))
    assert others == [True, False]


async def test_the_limiter_still_counts_after_redis_forgot_its_script(settings, fresh_redis):
    import redis.asyncio

    settings.REDIS_URL = fresh_redis.url
    limiter = RateLimiter(RateLimit(2, 60))
    assert await limiter.hit("k")
    observer = redis.asyncio.Redis.from_url(fresh_redis.url)
    await observer.script_flush()
    assert await limiter.hit("k")
    assert not await limiter.hit("k")
    assert await observer.zcard("switchboard:chat:rate:k") == 2
    await observer.aclose()
