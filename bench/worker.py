"""Benchmark the worker: messages per second a worker drains from one channel, Switchboard's
`realtime.worker.Worker` against Django Channels' `channels.worker.Worker`, on in-memory and
Redis layers.

    .venv/bin/python bench/worker.py [--messages 2000] [--rounds 3]

Each case queues `--messages` "job.run" messages on one channel, then starts the worker and times
until its consumer (an AsyncConsumer counting messages, without a channel layer of its own) has
handled them all. The best of `--rounds` runs is printed as a Markdown table. Redis cases use a
private redis-server on a free port, started and stopped by this script.

What differs between the workers: Channels' worker takes messages off the layer as fast as it can
and queues them for the consumer (a message taken but not yet handled is lost if the process
dies; ConsumeLater is not handled). Switchboard's takes the next message only when the previous
one is settled, re-queues on ConsumeLater, and on Switchboard's Redis layer acknowledges each one
(at-least-once delivery). One extra case shows the cost of a ConsumeLater on every message.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.servers import RedisServer  # noqa: E402

CHANNEL = "bench-jobs"


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    import django

    django.setup()


def switchboard_app(target: int, finished: asyncio.Event, consume_later: bool) -> Any:
    from realtime.consumer import AsyncConsumer
    from realtime.exceptions import ConsumeLater
    from realtime.routing import ChannelNameRouter
    from realtime.worker import RETRIES_KEY

    handled = 0

    class Counter(AsyncConsumer):
        channel_layer_alias = "bench-no-layer"

        async def job_run(self, message: dict) -> None:
            nonlocal handled
            if consume_later and not message.get(RETRIES_KEY):
                raise ConsumeLater()
            handled += 1
            if handled == target:
                finished.set()

    return ChannelNameRouter({CHANNEL: Counter.as_asgi()})


def channels_app(target: int, finished: asyncio.Event) -> Any:
    from channels.consumer import AsyncConsumer
    from channels.routing import ChannelNameRouter

    handled = 0

    class Counter(AsyncConsumer):
        channel_layer_alias = "bench-no-layer"

        async def job_run(self, message: dict) -> None:
            nonlocal handled
            handled += 1
            if handled == target:
                finished.set()

    return ChannelNameRouter({CHANNEL: Counter.as_asgi()})


async def drain(
    make_layer: Callable[[], Any], worker_kind: str, messages: int, consume_later: bool = False
) -> float:
    layer = make_layer()
    flush = getattr(layer, "flush", None)
    if flush is not None:
        await flush()
    for number in range(messages):
        await layer.send(CHANNEL, {"type": "job.run", "n": number})
    finished = asyncio.Event()
    started = time.perf_counter()
    if worker_kind == "switchboard":
        from realtime.worker import Worker

        application = switchboard_app(messages, finished, consume_later)
        worker = Worker(application, [CHANNEL], layer)
        task = asyncio.ensure_future(worker.run())
        await asyncio.wait_for(finished.wait(), 120)
        elapsed = time.perf_counter() - started
        worker.stop()
        await asyncio.wait_for(task, 30)
    else:
        from channels.worker import Worker as ChannelsWorker

        application = channels_app(messages, finished)
        channels_worker = ChannelsWorker(application, [CHANNEL], layer)
        task = asyncio.ensure_future(channels_worker.handle())
        await asyncio.wait_for(finished.wait(), 120)
        elapsed = time.perf_counter() - started
        # Channels' worker has no stop: cancel it, its listeners and application instances.
        current = asyncio.current_task()
        leftovers = [other for other in asyncio.all_tasks() if other is not current]
        for other in leftovers:
            other.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
    close = getattr(layer, "close", None) or getattr(layer, "close_pools", None)
    if close is not None:
        await close()
    return messages / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    setup_django()
    logging.getLogger("realtime.worker").setLevel(logging.WARNING)
    import channels.layers
    import channels_redis.core

    from realtime.layers.memory import InMemoryChannelLayer
    from realtime.layers.redis import RedisChannelLayer

    capacity = options.messages + 10
    redis = RedisServer(max_clients=20000)
    redis.start()
    # redis-py 8's default 5 s socket timeout equals channels_redis' 5 s blocking pop: without a
    # longer one every idle receive() fails with a read timeout.
    channels_redis_host = {"address": redis.url, "socket_timeout": 30}

    def switchboard_memory() -> Any:
        return InMemoryChannelLayer(capacity=capacity)

    def channels_memory() -> Any:
        return channels.layers.InMemoryChannelLayer(capacity=capacity)

    def switchboard_redis() -> Any:
        return RedisChannelLayer(hosts=[redis.url], capacity=capacity)

    def channels_redis_layer() -> Any:
        return channels_redis.core.RedisChannelLayer(hosts=[channels_redis_host], capacity=capacity)

    try:
        cases = [
            ("Switchboard worker", "realtime in-memory", "switchboard", switchboard_memory, False),
            ("Channels worker", "channels in-memory", "channels", channels_memory, False),
            ("Switchboard worker", "realtime Redis, acks", "switchboard", switchboard_redis, False),
            ("Switchboard worker", "channels_redis", "switchboard", channels_redis_layer, False),
            ("Channels worker", "channels_redis", "channels", channels_redis_layer, False),
            ("Switchboard worker, ConsumeLater once per message", "realtime in-memory",
             "switchboard", switchboard_memory, True),
        ]  # fmt: skip
        print(f"Worker drain rate, {options.messages} messages, best of {options.rounds} runs\n")
        print("| Worker | Layer | messages/s |")
        print("|---|---|---:|")
        for worker_name, layer_name, kind, make_layer, consume_later in cases:
            best = max(
                asyncio.run(drain(make_layer, kind, options.messages, consume_later))
                for _ in range(options.rounds)
            )
            print(f"| {worker_name} | {layer_name} | {best:,.0f} |", flush=True)
    finally:
        redis.cleanup()


if __name__ == "__main__":
    main()
