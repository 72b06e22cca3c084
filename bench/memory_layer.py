"""Benchmark Switchboard's in-memory channel layer against Django Channels' one, in one process.

    .venv/bin/python bench/memory_layer.py [--deliveries 20000]

Cases (each layer freshly built, capacity 1000 so nothing is dropped):

1. send + receive round trips on one channel.
2. group_send to 1, 100 and 1000 members, each member's message then received
   (deliveries per second); once more with 5000 other channels holding a message, which is what
   a busy process looks like (Channels' layer scans all of them on every group_send).
3. group_send to 100 and 1000 consumer tasks already waiting in receive(), as real consumers
   are: the cost of waking them included.

Prints a Markdown table. Numbers depend on the machine; compare runs on the same one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    import django

    django.setup()


async def round_trips(layer: Any, count: int) -> float:
    channel = await layer.new_channel()
    started = time.perf_counter()
    for number in range(count):
        await layer.send(channel, {"type": "bench.message", "n": number})
        await layer.receive(channel)
    return count / (time.perf_counter() - started)


async def group_deliveries(layer: Any, members: int, other_channels: int, count: int) -> float:
    for number in range(other_channels):
        await layer.send(f"bench.other{number}", {"type": "bench.message"})
    names = [await layer.new_channel() for _ in range(members)]
    for name in names:
        await layer.group_add("bench", name)
    rounds = max(1, count // members)
    started = time.perf_counter()
    for number in range(rounds):
        await layer.group_send("bench", {"type": "chat.message", "text": "hello", "n": number})
        for name in names:
            await layer.receive(name)
    return members * rounds / (time.perf_counter() - started)


async def waiting_deliveries(layer: Any, members: int, count: int) -> float:
    names = [await layer.new_channel() for _ in range(members)]
    for name in names:
        await layer.group_add("bench", name)
    rounds = max(1, count // members)
    total = members * rounds
    received = 0
    all_received = asyncio.Event()

    async def consumer(name: str) -> None:
        nonlocal received
        for _ in range(rounds):
            await layer.receive(name)
            received += 1
            if received == total:
                all_received.set()

    tasks = [asyncio.create_task(consumer(name)) for name in names]
    await asyncio.sleep(0)
    started = time.perf_counter()
    for number in range(rounds):
        await layer.group_send("bench", {"type": "chat.message", "n": number})
        await asyncio.sleep(0)
    await asyncio.wait_for(all_received.wait(), 120)
    elapsed = time.perf_counter() - started
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return total / elapsed


async def run(deliveries: int) -> None:
    from channels.layers import InMemoryChannelLayer as ChannelsLayer

    from realtime.layers.memory import InMemoryChannelLayer as OurLayer

    def layers() -> tuple[Any, Any]:
        return OurLayer(capacity=1000), ChannelsLayer(capacity=1000)

    print("| case | realtime | channels 4 | ratio |")
    print("|---|---:|---:|---:|")

    async def row(label: str, measure: Any) -> None:
        ours, theirs = layers()
        ours_rate, theirs_rate = await measure(ours), await measure(theirs)
        ratio = ours_rate / theirs_rate
        print(f"| {label} | {ours_rate:,.0f} | {theirs_rate:,.0f} | {ratio:.1f}x |", flush=True)

    await row("send + receive, round trips/s", lambda layer: round_trips(layer, deliveries))
    for members, others in [(1, 0), (100, 0), (1000, 0), (100, 5000)]:
        label = f"group_send to {members}, {others} other channels, deliveries/s"
        await row(
            label,
            lambda layer, m=members, o=others: group_deliveries(layer, m, o, deliveries),
        )
    for members in (100, 1000):
        await row(
            f"group_send to {members} waiting consumers, deliveries/s",
            lambda layer, m=members: waiting_deliveries(layer, m, deliveries),
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deliveries", type=int, default=20000, help="messages per case")
    arguments = parser.parse_args()
    setup_django()
    asyncio.run(run(arguments.deliveries))


if __name__ == "__main__":
    main()
