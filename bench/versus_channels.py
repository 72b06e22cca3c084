"""Switchboard against the Channels tutorial chat app, in one run, on the same machine.

    .venv/bin/pip install -r bench/requirements.txt      # channels, for the reference app only
    .venv/bin/python bench/versus_channels.py [--scenarios a,flood,b,storm,idle]
                                              [--stacks core,pubsub,switchboard] [--seconds 5]
                                              [--idle-sockets 10000]

Three stacks, all on Daphne with a private redis-server on 127.0.0.1:

- *core*: `bench/reference_app/` (the tutorial's consumer: join a group, broadcast, save nothing,
  no login) with channels_redis' RedisChannelLayer;
- *pubsub*: the same app with channels_redis' RedisPubSubChannelLayer;
- *switchboard*: `manage.py serve` with Switchboard's Redis layer, saving every message before it
  is broadcast, every sender logged in.

Scenarios (each on a freshly started server process, Redis flushed, a fresh copy of the database):

- **a**: 200 clients in one room, 5 senders; each sender posts, waits for its own message to come
  back, posts the next, for `--seconds` after a 1 s warm-up. Deliveries per second (one message
  reaching one client) and p99 latency from the send to each client receiving it.
- **flood**: the same room; the 5 senders post 50 messages each without waiting. The share of the
  expected deliveries missing once the room is quiet (5 s without a delivery, at most 90 s).
- **b**: 1,000 clients in 100 rooms of 10, one sender a room (100), each waiting for its echo.
- **storm**: 2,000 sockets (100 rooms of 20, rooms with 50 messages of history) opened at the
  same moment. Connect time: from starting the handshake to being in the room: for the tutorial
  app the accepted handshake (it sends nothing on connect), for Switchboard the `presence` frame
  that follows the history page; on Switchboard every socket is logged in (500 users, 20
  different users a room), so each connect reads a session, a user, the room, its history page
  and a read marker, and joins presence.
- **idle**: `--idle-sockets` sockets (rooms of 100, logged in on Switchboard) opened in batches
  and left idle; the server's RSS growth per socket, and the pause of one full `gc.collect()` in
  the server at that size (timed by `bench/server_probe.py`).

Where the machine has two or more CPUs, each server runs pinned to CPU 0 (taskset) and this
process (the load generator, every client) to CPU 1; redis-server is not pinned. Every phase is
bounded in count and time; the script starts and stops only its own processes, by PID. Never part
of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    ReferenceServer,
    Server,
    percentile,
    prepare_database,
    private_redis,
    profiled,
    raise_open_file_limit,
)

STACKS = {
    "core": "Channels + channels_redis core",
    "pubsub": "Channels + channels_redis pub/sub",
    "switchboard": "Switchboard",
}
SCENARIOS = ("a", "flood", "b", "storm", "idle")
WARM_UP = 1.0
ECHO_TIMEOUT = 10.0
QUIET_SECONDS = 5.0
FLOOD_TIMEOUT = 90.0
CONNECT_TIMEOUT = 60.0
STORM_SOCKETS = 2000
STORM_ROOM = 20
HISTORY_MESSAGES = 50
IDLE_ROOM = 100
IDLE_BATCH = 500
USERS = 500
ROOMS = 100


@dataclass
class Stack:
    """How to start one stack and speak its chat protocol."""

    name: str
    sessions: dict[str, str]
    template: Path
    redis_url: str
    cpu: int | None
    profile_dir: Path | None = None

    def profile(self, scenario: str) -> Path | None:
        """Where `--profile` puts this stack's py-spy samples of `scenario` (None: no profile)."""
        return (
            None if self.profile_dir is None else self.profile_dir / f"{scenario}-{self.name}.txt"
        )

    @property
    def switchboard(self) -> bool:
        return self.name == "switchboard"

    def server(self, probe: bool = False) -> Server:
        if self.switchboard:
            return Server(
                "serve", "switchboard", self.redis_url, self.template, cpu=self.cpu, probe=probe
            )
        layer = "channels_redis" if self.name == "core" else "channels_redis_pubsub"
        return ReferenceServer(layer, self.redis_url, cpu=self.cpu, probe=probe)

    def frame(self, client_id: str) -> str:
        if self.switchboard:
            return json.dumps({"type": "message", "text": client_id, "client_id": client_id})
        return json.dumps({"message": client_id})

    def client_id(self, raw: str) -> str | None:
        """The benchmark id a received frame carries, if it is a live chat message."""
        if self.switchboard:
            if '"client_id"' not in raw:
                return None
            frame = json.loads(raw)
            return frame.get("client_id") if frame.get("type") == "message" else None
        return json.loads(raw).get("message")

    def headers(self, index: int) -> dict[str, str]:
        """Switchboard's clients are logged in (the tutorial app has no login). Client `index`
        is member n of room r (index = 100 n + r: every scenario but a has 100 rooms) and logs
        in as user (5 n + index) mod 500: the members of a room are different users, as in a
        real room (every join is a presence change), and no user holds more than 20 sockets
        (Switchboard's default cap per user and process) even at 10,000 sockets."""
        if not self.switchboard:
            return {}
        sessions = list(self.sessions.values())
        user = (5 * (index // ROOMS) + index) % len(sessions)
        return {"Cookie": f"sessionid={sessions[user]}"}


@dataclass
class Traffic:
    """What the clients of one scenario observe."""

    latencies: list[float] = field(default_factory=list)
    deliveries: int = 0
    flood_deliveries: int = 0
    duplicates: int = 0
    refused: int = 0  # error frames Switchboard answered with (its per-socket request budget)
    flood_ids: set[str] = field(default_factory=set)  # flood messages that reached anyone
    last_delivery: float = 0.0
    sent_at: dict[str, float] = field(default_factory=dict)
    echoes: dict[str, asyncio.Event] = field(default_factory=dict)
    measuring: bool = False


class Client:
    """One socket in one room."""

    def __init__(self, stack: Stack, server: Server, room: str, index: int) -> None:
        self.stack, self.server, self.room, self.index = stack, server, room, index
        self.socket: websockets.ClientConnection | None = None
        self.connect_seconds: float | None = None
        self.error: str | None = None
        self.in_room = asyncio.Event()

    async def run(self, traffic: Traffic, gate: asyncio.Event | None = None) -> None:
        if gate is not None:
            await gate.wait()
        started = time.perf_counter()
        seen: set[str] = set()
        try:
            async with websockets.connect(
                self.server.ws_url(f"/ws/chat/{self.room}/"),
                origin=self.server.origin,
                additional_headers=self.stack.headers(self.index),
                open_timeout=CONNECT_TIMEOUT,
                max_size=None,
                ping_interval=None,
                close_timeout=2,
            ) as socket:
                self.socket = socket
                if self.stack.switchboard:  # in the room once history and presence arrived
                    # (frames start with their type: the client need not decode 10 KB of history)
                    while not (await socket.recv()).startswith('{"type":"presence"'):
                        pass
                self.connect_seconds = time.perf_counter() - started
                self.in_room.set()
                async for raw in socket:
                    if self.stack.switchboard and raw.startswith('{"type":"error"'):
                        traffic.refused += 1
                        continue
                    client_id = self.stack.client_id(raw)
                    if not client_id:
                        continue
                    if client_id in seen:
                        traffic.duplicates += 1
                        continue
                    seen.add(client_id)
                    now = traffic.last_delivery = time.perf_counter()
                    if client_id.startswith("f:"):
                        traffic.flood_deliveries += 1
                        traffic.flood_ids.add(client_id)
                        continue
                    sent = traffic.sent_at.get(client_id)
                    if sent is not None and traffic.measuring:
                        traffic.deliveries += 1
                        traffic.latencies.append(now - sent)
                    echo = traffic.echoes.get(client_id)
                    if echo is not None:
                        echo.set()
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.in_room.set()


async def open_clients(
    stack: Stack, server: Server, rooms: list[str], per_room: int, traffic: Traffic,
    batch: int | None, gate: asyncio.Event | None = None,
) -> tuple[list[Client], list[asyncio.Task]]:  # fmt: skip
    """Open `per_room` clients in each room, `batch` at a time (each batch in the room before
    the next starts), or all at the moment `gate` is set."""
    clients = [
        Client(stack, server, room, n * len(rooms) + r)
        for n in range(per_room)
        for r, room in enumerate(rooms)
    ]  # the first member of every room, then the second of every room, ...
    tasks: list[asyncio.Task] = []
    step = batch or len(clients)
    for start in range(0, len(clients), step):
        chunk = clients[start : start + step]
        tasks += [asyncio.create_task(c.run(traffic, gate)) for c in chunk]
        if gate is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(c.in_room.wait() for c in chunk)), CONNECT_TIMEOUT
                )
    return clients, tasks


async def close_clients(clients: list[Client], tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def check_connected(clients: list[Client]) -> None:
    missing = [c for c in clients if c.connect_seconds is None]
    if missing:
        errors = sorted({c.error or "no answer" for c in missing})[:3]
        raise RuntimeError(f"{len(missing)} of {len(clients)} clients not in: {errors}")


async def steady(stack: Stack, server: Server, rooms: int, per_room: int, senders: int,
                 seconds: float) -> dict:  # fmt: skip
    """Senders post, each waiting for its echo; deliveries/s and latency percentiles."""
    traffic = Traffic()
    names = [f"room{n}" for n in range(rooms)]
    clients, tasks = await open_clients(stack, server, names, per_room, traffic, batch=50)
    try:
        check_connected(clients)
        sending = clients[:senders]  # one a room in b, the first five in a
        stop = time.perf_counter() + WARM_UP + seconds

        async def sender(client: Client) -> None:
            n = 0
            while time.perf_counter() < stop:
                client_id = f"s:{client.index}:{n}"
                n += 1
                echo = traffic.echoes[client_id] = asyncio.Event()
                traffic.sent_at[client_id] = time.perf_counter()
                await client.socket.send(stack.frame(client_id))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(echo.wait(), ECHO_TIMEOUT)
                del traffic.echoes[client_id]

        async def measure() -> tuple[float, float]:
            await asyncio.sleep(WARM_UP)
            with profiled(server, stack.profile("a" if rooms == 1 else "b")):
                traffic.measuring = True
                started, cpu_before = time.perf_counter(), server.cpu_seconds()
                await asyncio.sleep(max(0.0, stop - time.perf_counter()))
                traffic.measuring = False
                return time.perf_counter() - started, server.cpu_seconds() - cpu_before

        (measured, cpu), *_ = await asyncio.gather(measure(), *(sender(c) for c in sending))
        return {
            "deliveries_per_second": traffic.deliveries / measured,
            "cpu_us_per_delivery": cpu * 1e6 / max(traffic.deliveries, 1),
            "p50_ms": percentile(traffic.latencies, 0.5) * 1000,
            "p99_ms": percentile(traffic.latencies, 0.99) * 1000,
            "duplicates": traffic.duplicates,
        }
    finally:
        await close_clients(clients, tasks)


async def flood(stack: Stack, server: Server, clients_count: int, senders: int,
                messages: int) -> dict:  # fmt: skip
    """Senders post `messages` each without waiting; the share of deliveries that never came."""
    traffic = Traffic()
    clients, tasks = await open_clients(stack, server, ["room0"], clients_count, traffic, batch=100)
    try:
        check_connected(clients)
        started = traffic.last_delivery = time.perf_counter()

        async def sender(client: Client) -> None:
            for n in range(messages):
                await client.socket.send(stack.frame(f"f:{client.index}:{n}"))

        await asyncio.gather(*(sender(c) for c in clients[:senders]))
        deadline = started + FLOOD_TIMEOUT
        sent = senders * messages
        while time.perf_counter() < deadline:
            if traffic.flood_deliveries >= sent * clients_count:
                break
            if time.perf_counter() - traffic.last_delivery > QUIET_SECONDS:
                break
            await asyncio.sleep(0.1)
        # Switchboard refuses frames over a socket's request budget (an error frame back to the
        # sender, coalesced); a refused message was never accepted, so it is counted apart: a
        # message is accepted when it reached anyone, and lost deliveries are the accepted
        # messages' deliveries that never came. The tutorial app refuses nothing.
        accepted = len(traffic.flood_ids) if stack.switchboard else sent
        return {
            "loss": 1 - traffic.flood_deliveries / max(accepted * clients_count, 1),
            "refused": sent - accepted,
            "sent": sent,
            "per_second": traffic.flood_deliveries / max(traffic.last_delivery - started, 1e-9),
            "duplicates": traffic.duplicates,
        }
    finally:
        await close_clients(clients, tasks)


async def storm(stack: Stack, server: Server, sockets: int) -> dict:
    """Every socket starts its handshake at the same moment; connect-time percentiles."""
    traffic = Traffic()
    names = [f"room{n}" for n in range(sockets // STORM_ROOM)]
    gate = asyncio.Event()
    clients, tasks = await open_clients(
        stack, server, names, STORM_ROOM, traffic, batch=None, gate=gate
    )
    try:
        with profiled(server, stack.profile("storm")):
            cpu_before = server.cpu_seconds()
            gate.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.gather(*(c.in_room.wait() for c in clients)), CONNECT_TIMEOUT + 5
                )
            cpu = server.cpu_seconds() - cpu_before
        times = [c.connect_seconds for c in clients if c.connect_seconds is not None]
        return {
            "cpu_ms_per_connect": cpu * 1000 / max(len(times), 1),
            "connected": len(times),
            "wanted": len(clients),
            "p50_ms": percentile(times, 0.5) * 1000,
            "p99_ms": percentile(times, 0.99) * 1000,
            "errors": sorted({c.error for c in clients if c.error})[:3],
        }
    finally:
        await close_clients(clients, tasks)


async def idle(stack: Stack, server: Server, sockets: int) -> dict:
    """RSS per idle socket and the full-collection pause with `sockets` open."""
    traffic = Traffic()
    # Warm up (imports, first connections, the layer's connection) before the baseline.
    warm, warm_tasks = await open_clients(stack, server, ["room0"], 10, traffic, batch=10)
    await close_clients(warm, warm_tasks)
    await asyncio.sleep(1.0)
    before = server.rss_bytes()
    pause_before = await asyncio.to_thread(server.full_collection)
    names = [f"room{n}" for n in range(sockets // IDLE_ROOM)]
    clients, tasks = await open_clients(stack, server, names, IDLE_ROOM, traffic, batch=IDLE_BATCH)
    try:
        connected = sum(1 for c in clients if c.connect_seconds is not None)
        await asyncio.sleep(2.0)
        after = server.rss_bytes()
        pause = await asyncio.to_thread(server.full_collection)
        return {
            "connected": connected,
            "wanted": len(clients),
            "rss_before_mb": before / 2**20,
            "rss_after_mb": after / 2**20,
            "kib_per_socket": (after - before) / 1024 / max(connected, 1),
            "gc_pause_ms": pause["pause_ms"],
            "gc_pause_empty_ms": pause_before["pause_ms"],
            "gc_tracked": pause["tracked"],
        }
    finally:
        await close_clients(clients, tasks)


def run_scenario(stack: Stack, scenario: str, args: argparse.Namespace) -> dict:
    with stack.server(probe=scenario == "idle") as server:
        if scenario == "a":
            return asyncio.run(steady(stack, server, 1, 200, 5, args.seconds))
        if scenario == "flood":
            return asyncio.run(flood(stack, server, 200, 5, 50))
        if scenario == "b":
            return asyncio.run(steady(stack, server, 100, 10, 100, args.seconds))
        if scenario == "storm":
            return asyncio.run(storm(stack, server, STORM_SOCKETS))
        return asyncio.run(idle(stack, server, args.idle_sockets))


CELLS: dict[str, Callable[[dict], str]] = {
    "a": lambda r: (
        f"{r['deliveries_per_second']:,.0f} deliv/s, p99 {r['p99_ms']:.0f} ms,"
        f" server CPU {r['cpu_us_per_delivery']:.0f} µs/delivery"
    ),
    "flood": lambda r: (
        f"{r['loss']:.1%} lost"
        + (f" ({r['refused']}/{r['sent']} refused, rate_limited)" if r.get("refused") else "")
    ),
    "b": lambda r: (
        f"{r['deliveries_per_second']:,.0f} deliv/s, p99 {r['p99_ms']:.0f} ms,"
        f" server CPU {r['cpu_us_per_delivery']:.0f} µs/delivery"
    ),
    "storm": lambda r: (
        f"{r['connected']}/{r['wanted']}, connect p99 {r['p99_ms'] / 1000:.2f} s"
        f" (p50 {r['p50_ms'] / 1000:.2f} s), server CPU {r['cpu_ms_per_connect']:.2f} ms/connect"
    ),
    "idle": lambda r: (
        f"{r['kib_per_socket']:.1f} KiB/socket ({r['connected']}/{r['wanted']}), "
        f"full gc {r['gc_pause_ms']:.0f} ms"
    ),
}
TITLES = {
    "a": "a: 200 clients, 1 room, 5 senders, each waits for its echo",
    "flood": "flood: same, senders do not wait (5 x 50)",
    "b": "b: 1,000 clients, 100 rooms of 10, 100 senders, each waits",
    "storm": f"storm: {STORM_SOCKETS:,} sockets open at once",
    "idle": "idle: {n:,} idle sockets, RSS per socket and one full collection",
}


def ratios(results: dict[tuple[str, str], dict]) -> list[str]:
    """Switchboard over the pub/sub app, per scenario, where both ran."""
    lines = []
    for scenario in SCENARIOS:
        ours, theirs = results.get(("switchboard", scenario)), results.get(("pubsub", scenario))
        if not ours or not theirs or "failed" in ours or "failed" in theirs:
            continue
        if scenario in ("a", "b"):
            lines.append(
                f"- {scenario}: deliveries/s {ours['deliveries_per_second'] / theirs['deliveries_per_second']:.2f}x, "
                f"p99 {ours['p99_ms'] / theirs['p99_ms']:.2f}x, server CPU per delivery "
                f"{ours['cpu_us_per_delivery'] / theirs['cpu_us_per_delivery']:.2f}x the pub/sub app's"
            )
        elif scenario == "storm":
            lines.append(
                f"- storm: connect p99 {ours['p99_ms'] / theirs['p99_ms']:.2f}x, server CPU per "
                f"connect {ours['cpu_ms_per_connect'] / theirs['cpu_ms_per_connect']:.2f}x"
            )
        elif scenario == "idle":
            lines.append(
                f"- idle: memory per socket {ours['kib_per_socket'] / theirs['kib_per_socket']:.2f}x"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--idle-sockets", type=int, default=10000)
    parser.add_argument(
        "--profile", type=Path, metavar="DIR",
        help="sample each server with py-spy during the measured phase of a, b and storm; "
        "collapsed stacks in DIR/<scenario>-<stack>.txt (py-spy slows the server: the "
        "figures of a profiled run are not comparable)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    scenarios = [s for s in args.scenarios.split(",") if s]
    stacks = [s for s in args.stacks.split(",") if s]
    for name in (*scenarios, *stacks):
        if name not in SCENARIOS and name not in STACKS:
            parser.error(f"unknown scenario or stack {name!r}")
    limit = raise_open_file_limit(2 * args.idle_sockets + 4096)
    server_cpu = None
    if len(os.sched_getaffinity(0)) >= 2:
        server_cpu = 0
        os.sched_setaffinity(0, {1})
    print(f"open file limit {limit}; server CPU {server_cpu}, clients on CPU 1", file=sys.stderr)

    redis = private_redis()
    results: dict[tuple[str, str], dict] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="sb-bench-") as directory:
            rooms = [f"room{n}" for n in range(max(ROOMS, args.idle_sockets // IDLE_ROOM))]
            senders = [f"bench-user-{n}" for n in range(USERS)]
            template, sessions = prepare_database(Path(directory), rooms, senders)
            storm_template = template
            if "storm" in scenarios and "switchboard" in stacks:
                storm_dir = Path(directory) / "storm"
                storm_dir.mkdir()
                storm_template, storm_sessions = prepare_database(
                    storm_dir, rooms[: STORM_SOCKETS // STORM_ROOM], senders, HISTORY_MESSAGES
                )
            for scenario in scenarios:
                for name in stacks:
                    redis.flushall()
                    if scenario == "storm":
                        stack = Stack(name, storm_sessions if name == "switchboard" else {},
                                      storm_template, redis.url, server_cpu, args.profile)  # fmt: skip
                    else:
                        stack = Stack(name, sessions, template, redis.url, server_cpu, args.profile)
                    try:
                        result = run_scenario(stack, scenario, args)
                    except Exception as error:  # one failed cell, not a failed run
                        result = {"failed": f"{type(error).__name__}: {error}"[:200]}
                    results[(name, scenario)] = result
                    print(f"{scenario:6} {name:12} {result}", file=sys.stderr, flush=True)
    finally:
        redis.cleanup()

    cores = "server on CPU 0, clients on CPU 1" if server_cpu is not None else "unpinned"
    print(f"\nPython {sys.version.split()[0]}, {os.cpu_count()} CPUs ({cores}), Daphne\n")
    print("| scenario | " + " | ".join(STACKS[s] for s in stacks) + " |")
    print("|---|" + "---|" * len(stacks))
    for scenario in scenarios:
        title = TITLES[scenario].format(n=args.idle_sockets)
        cells = [
            results[(s, scenario)].get("failed") or CELLS[scenario](results[(s, scenario)])
            for s in stacks
        ]
        print(f"| {title} | " + " | ".join(cells) + " |")
    lines = ratios(results)
    if lines:
        print("\nSwitchboard over the Channels pub/sub app, same run:")
        print("\n".join(lines))
    duplicates = {k: r["duplicates"] for k, r in results.items() if r.get("duplicates")}
    if duplicates:
        print(f"\nduplicate deliveries: {duplicates}")
    for scenario in ("a", "b"):
        if scenario in scenarios:
            medians = ", ".join(
                f"{s} {results[(s, scenario)].get('p50_ms', float('nan')):.0f} ms" for s in stacks
            )
            print(f"\n{scenario}: p50 latency {medians}")


if __name__ == "__main__":
    main()
