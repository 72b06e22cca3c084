"""The message rate limiter: parsing the setting, the in-process window, the Redis window that
every process shares."""

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
    import asyncio

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
