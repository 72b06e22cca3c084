"""Channel layer benchmark: our Redis layer against channels_redis (core and pub/sub) and the
in-memory layer, in one run, on a private redis-server this script starts on a free port.

    .venv/bin/python bench/layers.py [--repeat 3] [--seconds 1.5] [--sizes 1,100,1000]

Measures, each the median of ``--repeat`` runs:

- round trips per second: ``send`` then ``receive`` on a process-local channel (``new_channel()``)
  and on a worker channel (a named one, durable in the Redis layers);
- ``group_send`` to 1, 100 and 1000 members, the members in the sender's process or spread over
  4 other processes: deliveries per second and the p50/p99 latency from ``group_send`` to the
  member's ``receive`` returning. Up to ``WINDOW`` group messages are in flight at once.

Each measurement is bounded by ``--seconds`` of sending and a timeout. Prints a Markdown table
with ratios against channels_redis core measured in the same run. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import statistics
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.servers import RedisServer  # noqa: E402

BACKENDS = ["redis", "channels_redis", "channels_redis_pubsub", "memory"]
TITLES = {
    "redis": "Switchboard Redis",
    "channels_redis": "channels_redis core",
    "channels_redis_pubsub": "channels_redis pub/sub",
    "memory": "in-memory",
}
WINDOW = 8  # group messages in flight
CAPACITY = 100_000  # large enough that no layer drops while the window is full
WAVE_TIMEOUT = 20.0


def make_layer(backend: str, url: str) -> Any:
    if backend == "redis":
        from realtime.layers.redis import RedisChannelLayer

        return RedisChannelLayer(hosts=[url], capacity=CAPACITY)
    # channels_redis blocks 5 s per read while redis-py 8 times sockets out after 5 s: give its
    # sockets room, as config/settings.py does.
    reference_host = {"address": url, "socket_timeout": 30}
    if backend == "channels_redis":
        from channels_redis.core import RedisChannelLayer as CoreLayer

        return CoreLayer(hosts=[reference_host], capacity=CAPACITY)
    if backend == "channels_redis_pubsub":
        from channels_redis.pubsub import RedisPubSubChannelLayer

        return RedisPubSubChannelLayer(hosts=[reference_host])
    from realtime.layers.memory import InMemoryChannelLayer

    return InMemoryChannelLayer(capacity=CAPACITY)


async def close_layer(backend: str, layer: Any) -> None:
    if backend == "channels_redis":
        await layer.close_pools()
    elif backend == "channels_redis_pubsub":
        await layer.flush()
    else:
        await layer.close()


# -- a private redis-server -----------------------------------------------------------------------


# -- round trips ----------------------------------------------------------------------------------


async def round_trips(backend: str, url: str, seconds: float, worker: bool) -> float:
    layer = make_layer(backend, url)
    try:
        channel = "bench.worker" if worker else await layer.new_channel()
        for _ in range(20):  # warm up connections and scripts
            await layer.send(channel, {"type": "bench.warmup"})
            await layer.receive(channel)
        count = 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline and count < 200_000:
            for _ in range(50):
                await layer.send(channel, {"type": "bench.ping", "n": count})
                await layer.receive(channel)
                count += 1
        return count / (time.perf_counter() - start)
    finally:
        await close_layer(backend, layer)


# -- group_send -----------------------------------------------------------------------------------


class Members:
    """Receivers of one process: counts each wave's deliveries and keeps latencies."""

    def __init__(self, layer: Any, size: int, on_wave_done: Callable[[int], None]) -> None:
        self.layer = layer
        self.size = size
        self.counts: dict[int, int] = defaultdict(int)
        self.latencies: list[float] = []
        self.on_wave_done = on_wave_done
        self.tasks: list[asyncio.Task[None]] = []

    async def join(self, group: str) -> None:
        channels = [await self.layer.new_channel() for _ in range(self.size)]
        for channel in channels:
            await self.layer.group_add(group, channel)
        self.tasks = [asyncio.ensure_future(self.receive(channel)) for channel in channels]

    async def receive(self, channel: str) -> None:
        while True:
            message = await self.layer.receive(channel)
            now = time.time()
            wave = message["w"]
            if wave >= 0:
                self.latencies.append(now - message["t"])
            self.counts[wave] += 1
            if self.counts[wave] == self.size:
                del self.counts[wave]
                self.on_wave_done(wave)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)


def child_main(backend: str, url: str, group: str, size: int, connection: Any) -> None:
    """A process holding ``size`` members; reports each completed wave, then its latencies."""

    async def run() -> None:
        loop = asyncio.get_running_loop()
        layer = make_layer(backend, url)
        members = Members(layer, size, lambda wave: connection.send(("done", wave)))
        await members.join(group)
        stop = asyncio.Event()
        threading.Thread(
            target=lambda: (connection.recv(), loop.call_soon_threadsafe(stop.set)), daemon=True
        ).start()
        connection.send(("ready", None))
        await stop.wait()
        # Report first: a reference layer may take long to clean up cancelled receives.
        connection.send(("latencies", list(members.latencies)))
        await members.stop()
        await close_layer(backend, layer)

    asyncio.run(run())


async def group_fan_out(
    backend: str, url: str, size: int, processes: int, seconds: float
) -> tuple[float, float, float]:
    """(deliveries/s, p50 ms, p99 ms) of group_send to ``size`` members in ``processes``."""
    group = "bench.group"
    loop = asyncio.get_running_loop()
    done_per_wave: dict[int, int] = defaultdict(int)
    completed = 0
    progress = asyncio.Event()
    processes = min(processes, size)
    expected = max(processes, 1)

    def wave_done(wave: int) -> None:
        nonlocal completed
        done_per_wave[wave] += 1
        if done_per_wave[wave] == expected:
            del done_per_wave[wave]
            completed += 1
            progress.set()

    layer = make_layer(backend, url)
    children: list[tuple[Any, Any]] = []
    members = None
    try:
        if processes == 0:
            members = Members(layer, size, wave_done)
            await members.join(group)
        else:
            context = multiprocessing.get_context("spawn")
            for index in range(processes):
                # Spread the members as evenly as possible (1 member: one process).
                share = size // processes + (1 if index < size % processes else 0)
                parent_end, child_end = context.Pipe()
                process = context.Process(
                    target=child_main, args=(backend, url, group, share, child_end), daemon=True
                )
                process.start()
                children.append((process, parent_end))
            for _, pipe in children:
                kind, _ = await asyncio.to_thread(pipe.recv)
                assert kind == "ready"
            for _, pipe in children:

                def pump(pipe: Any = pipe) -> None:
                    while True:
                        try:
                            kind, value = pipe.recv()
                        except EOFError:
                            return
                        if kind == "done":
                            loop.call_soon_threadsafe(wave_done, value)
                        else:
                            loop.call_soon_threadsafe(latency_parts.append, value)
                            return

                threading.Thread(target=pump, daemon=True).start()
        latency_parts: list[list[float]] = []

        async def wait_for_completed(count: int) -> None:
            while completed < count:
                progress.clear()
                await asyncio.wait_for(progress.wait(), WAVE_TIMEOUT)

        # Warm-up wave (w = -1 is not timed), then timed waves.
        await layer.group_send(group, {"type": "bench.message", "t": time.time(), "w": -1})
        await wait_for_completed(1)
        start = time.perf_counter()
        deadline = start + seconds
        sent = 0
        while time.perf_counter() < deadline and sent < 100_000:
            await wait_for_completed(1 + sent - WINDOW + 1)
            await layer.group_send(group, {"type": "bench.message", "t": time.time(), "w": sent})
            sent += 1
        await wait_for_completed(1 + sent)
        elapsed = time.perf_counter() - start
        if members is not None:
            latencies = members.latencies
        else:
            for _, pipe in children:
                pipe.send("stop")
            deadline_collect = time.monotonic() + 30
            while len(latency_parts) < len(children) and time.monotonic() < deadline_collect:
                await asyncio.sleep(0.05)
            latencies = [value for part in latency_parts for value in part]
        if not latencies:
            raise RuntimeError("no latencies reported by the member processes")
        latencies.sort()
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        return sent * size / elapsed, p50, p99
    finally:
        if members is not None:
            await members.stop()
        for process, pipe in children:
            with contextlib.suppress(Exception):
                pipe.send("stop")
            process.join(10)
            if process.is_alive():
                process.kill()
        await close_layer(backend, layer)


# -- our layer on several shards ------------------------------------------------------------------

ROOMS = 24  # groups the sharded rows spread their messages over (each on one shard)
LAYOUTS = {
    "one": "one server",
    "hosts": "3 hosts",
    "cluster": "cluster, 3 masters",
}


class Layout:
    """The Redis servers of one layout and the layer CONFIG that uses them."""

    def __init__(self, name: str) -> None:
        from tests.servers import RedisCluster, RedisServer

        self.name = name
        self.cluster: RedisCluster | None = None
        self.servers: list[RedisServer] = []
        if name == "cluster":
            self.cluster = RedisCluster()
            self.cluster.start()
            self.config: dict[str, Any] = {"cluster": self.cluster.url}
        else:
            self.servers = [RedisServer() for _ in range(3 if name == "hosts" else 1)]
            for server in self.servers:
                server.start()
            self.config = {"hosts": [server.url for server in self.servers]}

    def ports(self) -> list[int]:
        if self.cluster is not None:
            return [node.port for node in self.cluster.nodes]
        return [server.port for server in self.servers]

    def cpu_seconds(self) -> list[float]:
        """used_cpu_user + used_cpu_sys of each server (its main thread and children)."""
        import redis

        seconds = []
        for port in self.ports():
            client = redis.Redis(port=port)
            info = client.info("cpu")
            client.close()
            seconds.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
        return seconds

    def flushall(self) -> None:
        if self.cluster is not None:
            self.cluster.flushall()
        for server in self.servers:
            server.flushall()

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.cleanup()
        for server in self.servers:
            server.cleanup()


def rooms_child_main(config: dict[str, Any], share: int, connection: Any) -> None:
    """A process holding ``share`` members in each of the ROOMS groups; reports each wave once
    all ``share`` members of the wave's room received it."""
    from realtime.layers.redis import RedisChannelLayer

    async def run() -> None:
        loop = asyncio.get_running_loop()
        layer = RedisChannelLayer(capacity=CAPACITY, **config)
        counts: dict[int, int] = defaultdict(int)

        async def receive(channel: str) -> None:
            while True:
                wave = (await layer.receive(channel))["w"]
                counts[wave] += 1
                if counts[wave] == share:
                    del counts[wave]
                    connection.send(("done", wave))

        channels = []
        for room in range(ROOMS):
            for _ in range(share):
                channel = await layer.new_channel()
                await layer.group_add(f"bench.room{room}", channel)
                channels.append(channel)
        tasks = [asyncio.ensure_future(receive(channel)) for channel in channels]
        stop = asyncio.Event()
        threading.Thread(
            target=lambda: (connection.recv(), loop.call_soon_threadsafe(stop.set)), daemon=True
        ).start()
        connection.send(("ready", None))
        await stop.wait()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await layer.close()

    asyncio.run(run())


async def rooms_fan_out(
    layout: Layout, size: int, processes: int, seconds: float
) -> tuple[float, list[float], list[int]]:
    """(deliveries/s, Redis CPU µs per group_send on each server, rooms each server owns) of
    group_send to ROOMS groups of ``size`` members each, in turn, the members spread over
    ``processes`` processes."""
    from realtime.layers.redis import RedisChannelLayer

    loop = asyncio.get_running_loop()
    done: dict[int, int] = defaultdict(int)
    completed = 0
    progress = asyncio.Event()

    def wave_done(wave: int) -> None:
        nonlocal completed
        done[wave] += 1
        if done[wave] == processes:
            del done[wave]
            completed += 1
            progress.set()

    context = multiprocessing.get_context("spawn")
    children = []
    layer = RedisChannelLayer(capacity=CAPACITY, **layout.config)
    try:
        for _ in range(processes):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=rooms_child_main,
                args=(layout.config, size // processes, child_end),
                daemon=True,
            )
            process.start()
            children.append((process, parent_end))
        for _, pipe in children:
            kind, _ = await asyncio.to_thread(pipe.recv)
            assert kind == "ready"
        for _, pipe in children:

            def pump(pipe: Any = pipe) -> None:
                with contextlib.suppress(EOFError, OSError):
                    while True:
                        kind, value = pipe.recv()
                        if kind == "done":
                            loop.call_soon_threadsafe(wave_done, value)

            threading.Thread(target=pump, daemon=True).start()

        async def wait_for_completed(count: int) -> None:
            while completed < count:
                progress.clear()
                await asyncio.wait_for(progress.wait(), WAVE_TIMEOUT)

        for room in range(ROOMS):  # warm-up: one wave per room
            await layer.group_send(f"bench.room{room}", {"type": "bench.message", "w": -1 - room})
        await wait_for_completed(ROOMS)
        await layer.shards.refresh()
        owners = Counter(
            layer.shards.server_for(f"bench.room{room}").address[1] for room in range(ROOMS)
        )
        rooms_per_server = [owners[port] for port in layout.ports()]
        # What each server spends idle (cron, cluster bus, health checks) over the same time,
        # taken off below: at a few hundred group_sends per second it would be a large share.
        idle_before = layout.cpu_seconds()
        idle_start = time.perf_counter()
        await asyncio.sleep(min(seconds, 1.0))
        idle_rates = [
            (after - before) / (time.perf_counter() - idle_start)
            for before, after in zip(idle_before, layout.cpu_seconds(), strict=True)
        ]
        cpu_before = layout.cpu_seconds()
        start = time.perf_counter()
        deadline = start + seconds
        sent = 0
        while time.perf_counter() < deadline and sent < 100_000:
            await wait_for_completed(ROOMS + sent - WINDOW + 1)
            room = f"bench.room{sent % ROOMS}"
            await layer.group_send(room, {"type": "bench.message", "w": sent})
            sent += 1
        await wait_for_completed(ROOMS + sent)
        elapsed = time.perf_counter() - start
        cpu_after = layout.cpu_seconds()
        share = (size // processes) * processes
        per_message = [
            max(0.0, after - before - idle * elapsed) / sent * 1e6
            for before, after, idle in zip(cpu_before, cpu_after, idle_rates, strict=True)
        ]
        return sent * share / elapsed, per_message, rooms_per_server
    finally:
        for process, pipe in children:
            with contextlib.suppress(Exception):
                pipe.send("stop")
            process.join(10)
            if process.is_alive():
                process.kill()
        await layer.close()


def shard_table(options: Any) -> str:
    """group_send to ROOMS rooms on one server, 3 hosts and a 3-master cluster."""
    layouts = list(dict.fromkeys(options.layouts.split(",")))
    results: dict[tuple[int, str], list[tuple[float, list[float], list[int]]]] = defaultdict(list)
    for name in layouts:
        layout = Layout(name)
        try:
            for repetition in range(options.repeat):
                for size in (100, 1000):
                    layout.flushall()
                    value = asyncio.run(rooms_fan_out(layout, size, 4, options.seconds))
                    results[(size, name)].append(value)
                    print(f"[{repetition + 1}/{options.repeat}] {ROOMS} rooms of {size} / "
                          f"{name}: {value}", file=sys.stderr, flush=True)  # fmt: skip
        finally:
            layout.stop()
    lines = [
        f"Our layer, group_send in turn to {ROOMS} rooms, members spread over 4 processes; "
        f"medians of {options.repeat} runs, {options.seconds}s each, window {WINDOW}. "
        "Redis CPU: user + system time of each server over the run less what it spends idle "
        "over the same time, per group_send (of all rooms), in µs; in brackets, the rooms the "
        "server owns.",
        "",
        "| Scenario | Layout | deliveries/s | Redis CPU per group_send, each server (µs) |",
        "|---|---|---:|---|",
    ]
    for size in (100, 1000):
        for name in layouts:
            runs = results.get((size, name), [])
            if not runs:
                continue
            rate = median([run[0] for run in runs])
            cpu = [median([run[1][i] for run in runs]) for i in range(len(runs[0][1]))]
            rooms = runs[0][2]
            cpu_text = " / ".join(
                f"{value:.1f} ({owned} rooms)" for value, owned in zip(cpu, rooms, strict=True)
            )
            lines.append(
                f"| {ROOMS} rooms of {size} members | {LAYOUTS[name]} | {rate:,.0f} | "
                f"{cpu_text} (total {sum(cpu):.1f}) |"
            )
    return "\n".join(lines)


# -- the run --------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.5)
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument(
        "--layouts",
        default=",".join(LAYOUTS),
        help="our layer on several shards: one,hosts,cluster (empty: skip that table)",
    )
    options = parser.parse_args()
    sizes = [int(size) for size in options.sizes.split(",")]
    backends = [backend for backend in options.backends.split(",") if backend]
    server = RedisServer(max_clients=20000)
    server.start()
    results: dict[tuple[str, str], list[Any]] = defaultdict(list)
    scenarios: list[tuple[str, Callable[[str], Any], set[str]]] = [
        (
            "round trip, process-local channel (round trips/s)",
            lambda backend: round_trips(backend, server.url, options.seconds, worker=False),
            set(),
        ),
        (
            "round trip, worker channel (round trips/s)",
            lambda backend: round_trips(backend, server.url, options.seconds, worker=True),
            {"channels_redis_pubsub"},
        ),
    ]
    for processes in (0, 4):
        for size in sizes:
            if processes == 0:
                where = "in the sender's process"
            elif size < 2:
                where = "in another process"
            else:
                where = f"spread over {min(processes, size)} processes"
            scenarios.append(
                (
                    f"group_send to {size} member{'s' if size > 1 else ''}, {where} "
                    "(deliveries/s, p50/p99 ms)",
                    lambda backend, size=size, processes=processes: group_fan_out(
                        backend, server.url, size, processes, options.seconds
                    ),
                    {"memory"} if processes else set(),
                )
            )
    if not backends:
        scenarios = []
    try:
        for repetition in range(options.repeat):
            for title, run, unsupported in scenarios:
                for backend in backends:
                    if backend in unsupported:
                        continue
                    server.flushall()
                    try:
                        value = asyncio.run(run(backend))
                    except Exception as exc:  # a reference layer failing is a result too
                        value = f"failed: {type(exc).__name__}"
                        traceback.print_exc()
                    results[(title, backend)].append(value)
                    print(f"[{repetition + 1}/{options.repeat}] {title} / {backend}: {value}",
                          file=sys.stderr, flush=True)  # fmt: skip
    finally:
        server.cleanup()
    if scenarios:
        print(render(scenarios, backends, results, options))
    if options.layouts:
        print()
        print(shard_table(options))


def render(scenarios: list, backends: list[str], results: dict, options: Any) -> str:
    def cell_of(values: list[Any]) -> tuple[str, float | None]:
        """Median of the successful runs; failed runs are named after it."""
        if not values:
            return "n/a", None
        failures = [v for v in values if isinstance(v, str)]
        successes = [v for v in values if not isinstance(v, str)]
        if not successes:
            return failures[0], None
        if isinstance(successes[0], tuple):
            rate = median([v[0] for v in successes])
            p50 = median([v[1] for v in successes])
            p99 = median([v[2] for v in successes])
            text = f"{rate:,.0f} ({p50:.1f} / {p99:.1f})"
        else:
            rate = median(successes)
            text = f"{rate:,.0f}"
        if failures:
            text += f" [{len(failures)} of {len(values)} runs {failures[0]}]"
        return text, rate

    header = ["Scenario", *(TITLES[b] for b in backends), "ours / core"]
    lines = [
        f"Medians of {options.repeat} runs, {options.seconds}s each, window {WINDOW}; "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    for title, _, _ in scenarios:
        cells, rates = [], {}
        for backend in backends:
            text, rate = cell_of(results.get((title, backend), []))
            cells.append(text)
            rates[backend] = rate
        ours, core = rates.get("redis"), rates.get("channels_redis")
        ratio = f"{ours / core:.1f}x" if ours and core else "n/a"
        lines.append("| " + " | ".join([title, *cells, ratio]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
