"""Benchmark the realtime core's routers and consumers against Django Channels' own, in-process.

    .venv/bin/python bench/core_consumers.py [--repeat 3] [--routes 50] [--frames 5000]
                                             [--members 200]

Each scenario runs the same code path twice, once on `realtime` and once on `channels` (the
package is installed only as the reference), both on our in-memory channel layer, so the
difference is the routing and consumer machinery alone. Every figure is the median of --repeat
runs; each run is bounded by its count and by a timeout.

1. routing: connections routed per second through ProtocolTypeRouter -> URLRouter (--routes
   routes) -> nested URLRouter (10 routes) -> a trivial ASGI app; the path matches the last route.
2. echo: websocket frames per second through one AsyncWebsocketConsumer that echoes each frame
   (a frame in, a frame out, one at a time).
3. fan-out: --members AsyncWebsocketConsumers in one group; group_send of 20 messages; frames
   delivered to clients per second (each consumer turns each group event into a frame).

Never part of the test suite. Numbers depend on the machine; compare runs on the same one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.pop("REDIS_URL", None)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

MEMORY_LAYER = {"default": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"}}
TIMEOUT = 60.0


class Implementation:
    """The routers and the websocket consumer base of one library."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "realtime":
            from realtime.generic.websocket import AsyncWebsocketConsumer
            from realtime.layers import channel_layers
            from realtime.routing import ProtocolTypeRouter, URLRouter
        else:
            from channels.generic.websocket import AsyncWebsocketConsumer
            from channels.layers import channel_layers
            from channels.routing import ProtocolTypeRouter, URLRouter
        self.ProtocolTypeRouter = ProtocolTypeRouter
        self.URLRouter = URLRouter
        self.AsyncWebsocketConsumer = AsyncWebsocketConsumer
        self.channel_layers = channel_layers

    def fresh_layer(self) -> Any:
        self.channel_layers.backends = {}
        return self.channel_layers["default"]


async def trivial_app(scope: Any, receive: Any, send: Any) -> None:
    return None


async def bench_routing(impl: Implementation, routes: int, connections: int = 20000) -> float:
    inner = impl.URLRouter([path(f"room-{i}/<slug:name>/", trivial_app) for i in range(10)])
    outer = impl.URLRouter(
        [path(f"ws/area-{i}/", inner) for i in range(routes - 1)]
        + [path("ws/last/<int:tenant>/", inner)]
    )
    application = impl.ProtocolTypeRouter({"websocket": outer})
    scope = {"type": "websocket", "path": "/ws/last/7/room-9/lobby/"}
    started = time.perf_counter()
    for _ in range(connections):
        await application(dict(scope), None, None)
    return connections / (time.perf_counter() - started)


def echo_consumer(impl: Implementation) -> Any:
    class Echo(impl.AsyncWebsocketConsumer):  # type: ignore[name-defined, misc]
        async def receive(self, text_data: Any = None, bytes_data: Any = None) -> None:
            await self.send(text_data=text_data)

        async def room_event(self, event: Any) -> None:
            await self.send(text_data=event["text"])

    return Echo


class Client:
    """A raw ASGI websocket client over two queues."""

    def __init__(self, application: Callable[..., Awaitable[None]]) -> None:
        self.incoming: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outgoing: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        scope = {"type": "websocket", "path": "/ws/", "headers": [], "subprotocols": []}
        self.task = asyncio.ensure_future(application(scope, self.incoming.get, self.outgoing.put))

    async def connect(self) -> None:
        await self.incoming.put({"type": "websocket.connect"})
        accepted = await asyncio.wait_for(self.outgoing.get(), TIMEOUT)
        assert accepted["type"] == "websocket.accept", accepted

    async def close(self) -> None:
        await self.incoming.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, TIMEOUT)


async def bench_echo(impl: Implementation, frames: int) -> float:
    impl.fresh_layer()
    client = Client(echo_consumer(impl).as_asgi())
    await client.connect()
    started = time.perf_counter()
    for number in range(frames):
        await client.incoming.put({"type": "websocket.receive", "text": str(number)})
        await asyncio.wait_for(client.outgoing.get(), TIMEOUT)
    elapsed = time.perf_counter() - started
    await client.close()
    return frames / elapsed


async def bench_fanout(impl: Implementation, members: int, messages: int = 20) -> float:
    layer = impl.fresh_layer()

    class Member(echo_consumer(impl)):  # type: ignore[misc]
        groups = ["room"]

    clients = [Client(Member.as_asgi()) for _ in range(members)]
    for client in clients:
        await client.connect()
    started = time.perf_counter()
    for number in range(messages):
        await layer.group_send("room", {"type": "room.event", "text": str(number)})

    async def drain(client: Client) -> None:
        for _ in range(messages):
            await client.outgoing.get()

    await asyncio.wait_for(asyncio.gather(*(drain(client) for client in clients)), TIMEOUT)
    elapsed = time.perf_counter() - started
    for client in clients:
        await client.close()
    return members * messages / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--routes", type=int, default=50)
    parser.add_argument("--frames", type=int, default=5000)
    parser.add_argument("--members", type=int, default=200)
    options = parser.parse_args()
    settings.CHANNEL_LAYERS = MEMORY_LAYER

    scenarios: list[tuple[str, str, Callable[[Implementation], Awaitable[float]]]] = [
        ("routing", "connections/s", lambda impl: bench_routing(impl, options.routes)),
        ("echo", "frames/s", lambda impl: bench_echo(impl, options.frames)),
        ("fan-out", "frames/s", lambda impl: bench_fanout(impl, options.members)),
    ]
    implementations = [Implementation("realtime"), Implementation("channels")]
    print("| scenario | unit | realtime | channels | realtime / channels |")
    print("|---|---|---:|---:|---:|")
    for name, unit, run in scenarios:
        medians = {}
        for impl in implementations:
            medians[impl.name] = statistics.median([await run(impl) for _ in range(options.repeat)])
        ratio = medians["realtime"] / medians["channels"]
        print(
            f"| {name} | {unit} | {medians['realtime']:,.0f} | {medians['channels']:,.0f} "
            f"| {ratio:.2f} |"
        )


if __name__ == "__main__":
    asyncio.run(main())
