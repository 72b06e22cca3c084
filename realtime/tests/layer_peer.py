"""Another OS process on the Redis channel layer, driven by the cross-process tests.

    python realtime/tests/layer_peer.py URL ROLE [ARGS...]

Roles (each prints one JSON object per line on stdout, flushed, so the test can follow along):

    listen [GROUP ...]      make a channel, join the groups, print {"channel": name}, then print
                            every message it receives
    group-send GROUP N      send N messages {"type": "peer.message", "number": i} to GROUP, print
                            {"sent": N}
    worker CHANNEL [hold]   receive_with_ack() from a worker channel and print each message;
                            acknowledge it, or with "hold" never acknowledge and wait (to be
                            killed mid-message)

Options come from the environment: PEER_WORKER_LEASE (seconds, default 1).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from realtime.layers.redis import RedisChannelLayer


def emit(value: dict) -> None:
    print(json.dumps(value), flush=True)


async def listen(layer: RedisChannelLayer, groups: list[str]) -> None:
    channel = await layer.new_channel()
    for group in groups:
        await layer.group_add(group, channel)
    emit({"channel": channel})
    while True:
        emit({"message": await layer.receive(channel)})


async def group_send(layer: RedisChannelLayer, group: str, count: int) -> None:
    for number in range(count):
        await layer.group_send(group, {"type": "peer.message", "number": number})
    emit({"sent": count})


async def worker(layer: RedisChannelLayer, channel: str, hold: bool) -> None:
    emit({"ready": channel})
    while True:
        message, ack = await layer.receive_with_ack(channel)
        emit({"message": message})
        if hold:
            await asyncio.sleep(3600)
        await ack()


async def main(url: str, role: str, args: list[str]) -> None:
    layer = RedisChannelLayer(
        hosts=[url], worker_lease=float(os.environ.get("PEER_WORKER_LEASE", "1"))
    )
    try:
        if role == "listen":
            await listen(layer, args)
        elif role == "group-send":
            await group_send(layer, args[0], int(args[1]))
        elif role == "worker":
            await worker(layer, args[0], hold=args[1:] == ["hold"])
        else:
            raise SystemExit(f"unknown role {role!r}; expected listen, group-send or worker")
    finally:
        await layer.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
