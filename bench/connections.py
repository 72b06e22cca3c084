"""Many connections on one process: 2,000 concurrent chat WebSockets on one Switchboard server
(Daphne, our Redis layer), then broadcasts in rooms of 100 and of 1,000.

    .venv/bin/python bench/connections.py [--connections 2000] [--broadcasts 20]
                                          [--server daphne] [--layer switchboard]

Two phases, each with all `--connections` sockets open at the same time (the file-descriptor
limit is raised with resource.setrlimit, for this process and the server):

1. rooms of 100: the sockets join rooms of 100; one logged-in member per room posts
   `--broadcasts` messages, one after the other, each waiting until every member got the last;
2. rooms of 1,000: the same with rooms of 1,000.

Reported per phase: how many sockets got in, connect time percentiles (handshake to the first
frame, the room's history, with every socket connecting at once) and delivery latency
percentiles (post to each member receiving it). 127.0.0.1 only, every wait bounded. Never part
of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    LAYER_TITLES,
    Server,
    percentile,
    prepare_database,
    private_redis,
    raise_open_file_limit,
)

CONNECT_TIMEOUT = 60.0
DELIVERY_TIMEOUT = 10.0
BROADCAST_SECONDS = 90.0


class Member:
    """One socket in one room, recording when each broadcast reached it."""

    def __init__(self, room: str, session: str | None) -> None:
        self.room = room
        self.session = session
        self.socket = None
        self.connect_seconds: float | None = None
        self.error: str | None = None
        self.arrivals: dict[str, float] = {}
        self.closed = False

    async def run(self, server: Server, start_gate: asyncio.Event) -> None:
        await start_gate.wait()
        started = time.perf_counter()
        headers = {"Cookie": f"sessionid={self.session}"} if self.session else {}
        try:
            async with websockets.connect(
                server.ws_url(f"/ws/chat/{self.room}/"),
                origin=server.origin,
                additional_headers=headers,
                open_timeout=CONNECT_TIMEOUT,
                max_size=None,
                ping_interval=None,
            ) as socket:
                await asyncio.wait_for(socket.recv(), CONNECT_TIMEOUT)  # history
                self.connect_seconds = time.perf_counter() - started
                self.socket = socket
                async for raw in socket:
                    if '"client_id"' in raw:
                        client_id = json.loads(raw).get("client_id", "")
                        if client_id.startswith("b:"):
                            self.arrivals.setdefault(client_id, time.perf_counter())
                self.error = f"closed by the server: {socket.close_code}"
        except Exception as error:
            self.error = f"{type(error).__name__}: {error}"
        finally:
            self.closed = True


async def phase(
    server: Server, sessions: dict[str, str], room_size: int, args: argparse.Namespace
) -> dict:
    rooms = [f"conn-{room_size}-{n}" for n in range(args.connections // room_size)]
    members: list[Member] = []
    senders: dict[str, Member] = {}
    for room in rooms:
        for index in range(room_size):
            session = sessions[room] if index == 0 else None
            member = Member(room, session)
            members.append(member)
            if index == 0:
                senders[room] = member
    gate = asyncio.Event()
    tasks = [asyncio.create_task(member.run(server, gate)) for member in members]
    gate.set()  # every socket connects at once
    deadline = time.perf_counter() + CONNECT_TIMEOUT
    while time.perf_counter() < deadline:
        if all(m.socket is not None or m.error is not None for m in members):
            break
        await asyncio.sleep(0.1)
    connected = [m for m in members if m.socket is not None]
    connect_times = [m.connect_seconds for m in connected if m.connect_seconds is not None]
    errors = sorted({m.error for m in members if m.error})[:3]

    latencies: list[float] = []
    sent_at: dict[str, float] = {}
    broadcasting_until = time.perf_counter() + BROADCAST_SECONDS
    for n in range(args.broadcasts):
        if time.perf_counter() > broadcasting_until:
            break
        posted = set()
        for room, sender in senders.items():
            if sender.socket is None or sender.closed:
                continue
            posted.add(room)
            client_id = f"b:{room}:{n}"
            sent_at[client_id] = time.perf_counter()
            text = json.dumps({"type": "message", "text": client_id, "client_id": client_id})
            await sender.socket.send(text)
        deadline = time.perf_counter() + DELIVERY_TIMEOUT
        while time.perf_counter() < deadline:
            waiting = [
                m
                for m in connected
                if m.room in posted and not m.closed and f"b:{m.room}:{n}" not in m.arrivals
            ]
            if not waiting:
                break
            await asyncio.sleep(0.01)
    expected = 0
    for member in connected:
        for client_id, sent in sent_at.items():
            if client_id.startswith(f"b:{member.room}:"):
                expected += 1
                if client_id in member.arrivals:
                    latencies.append(member.arrivals[client_id] - sent)

    dropped = sum(1 for m in connected if m.closed)
    errors = sorted({m.error for m in members if m.error})[:3]
    for member in connected:
        await member.socket.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "room_size": room_size,
        "rooms": len(rooms),
        "connected": len(connected),
        "wanted": len(members),
        "connect_p50_ms": percentile(connect_times, 0.5) * 1000,
        "connect_p99_ms": percentile(connect_times, 0.99) * 1000,
        "connect_max_ms": max(connect_times, default=float("nan")) * 1000,
        "delivered": len(latencies),
        "expected": expected,
        "delivery_p50_ms": percentile(latencies, 0.5) * 1000,
        "delivery_p99_ms": percentile(latencies, 0.99) * 1000,
        "dropped_after_connect": dropped,
        "errors": errors,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--broadcasts", type=int, default=20)
    parser.add_argument("--server", default="daphne")
    parser.add_argument("--layer", default="switchboard")
    parser.add_argument("--room-sizes", default="100,1000")
    args = parser.parse_args()
    limit = raise_open_file_limit(4 * args.connections + 1024)
    print(f"open file limit: {limit}", file=sys.stderr)

    sizes = [int(size) for size in args.room_sizes.split(",")]
    rooms = [f"conn-{size}-{n}" for size in sizes for n in range(args.connections // size)]
    redis = private_redis()
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="sb-bench-") as directory:
            template, sessions = prepare_database(Path(directory), rooms, rooms)
            for size in sizes:
                redis.flushall()
                with Server(args.server, args.layer, redis.url, template) as server:
                    result = asyncio.run(phase(server, sessions, size, args))
                results.append(result)
                print(result, file=sys.stderr, flush=True)
    finally:
        redis.cleanup()

    print(
        f"\n{args.connections} concurrent WebSockets on one {args.server} process "
        f"({LAYER_TITLES[args.layer]}), {args.broadcasts} broadcasts per room\n"
    )
    print(
        "| rooms | connected | connect p50 ms | connect p99 ms | connect max ms | "
        "delivered | delivery p50 ms | delivery p99 ms |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['rooms']} x {r['room_size']} | {r['connected']}/{r['wanted']} | "
            f"{r['connect_p50_ms']:.0f} | {r['connect_p99_ms']:.0f} | {r['connect_max_ms']:.0f} | "
            f"{r['delivered']}/{r['expected']} | {r['delivery_p50_ms']:.1f} | "
            f"{r['delivery_p99_ms']:.1f} |"
        )
        if r["dropped_after_connect"]:
            print(f"\n{r['dropped_after_connect']} sockets were closed during the broadcasts")
        if r["errors"]:
            print(f"\nconnection errors ({r['room_size']}): {r['errors']}")


if __name__ == "__main__":
    main()
