"""Whole-stack chat benchmark: the same chat room scenario on Switchboard with our Redis layer and
with channels_redis (core and pub/sub) as the channel layer, on Daphne and on uvicorn, in one run.

    .venv/bin/python bench/chat_stack.py [--clients 200] [--senders 5] [--seconds 5]
                                         [--flood 50] [--servers daphne,uvicorn]
                                         [--layers switchboard,channels_redis,channels_redis_pubsub]

For each (server, layer) pair it starts a private redis-server and one server process on a fresh
copy of a prepared SQLite database (DEBUG off), connects `--clients` WebSockets to one room (the
first `--senders` logged in, the rest anonymous readers), then:

1. steady: each sender posts a message, waits for it to come back, posts the next, for
   `--seconds` (after a 1 s warm-up). Reported: deliveries per second (messages received by all
   clients) and the p50/p99 latency from a send to each client receiving it.
2. flood: each sender posts `--flood` messages without waiting. Reported: the share of the
   expected deliveries (senders x flood x clients) that never arrived once the room went quiet
   (5 s without a delivery, at most 90 s), and the deliveries per second during the flood.

The clients run in this process, so on a small machine they compete with the server for CPU;
compare rows with each other, not with other machines. 127.0.0.1 only; every phase is bounded in
time. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import (
    LAYER_TITLES,
    LAYERS,
    SERVERS,
    Server,
    percentile,
    prepare_database,
    private_redis,
    raise_open_file_limit,
)

ROOM = "bench"
CONNECT_BATCH = 50
WARM_UP = 1.0
QUIET_SECONDS = 5.0
FLOOD_TIMEOUT = 90.0
ECHO_TIMEOUT = 10.0


@dataclass
class Room:
    """Everything the clients of one run observe."""

    latencies: list[float] = field(default_factory=list)
    steady_deliveries: int = 0
    flood_deliveries: int = 0
    last_delivery: float = 0.0
    sent_at: dict[str, float] = field(default_factory=dict)
    echoes: dict[str, asyncio.Event] = field(default_factory=dict)
    measuring: bool = False
    duplicates: int = 0


async def client(
    index: int, url: str, origin: str, session: str | None, room: Room, ready: dict
) -> None:
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    async with websockets.connect(
        url, origin=origin, additional_headers=headers, max_size=None, open_timeout=30
    ) as socket:
        seen: set[str] = set()
        ready[index] = socket
        async for raw in socket:
            if '"message"' not in raw and '"history"' not in raw:
                continue  # presence, typing: not what is measured
            frame = json.loads(raw)
            messages = frame.get("messages", []) if frame["type"] == "history" else [frame]
            now = time.perf_counter()
            for message in messages:
                client_id = message.get("client_id") or ""
                if not client_id.startswith(("s:", "f:")):
                    continue
                if client_id in seen:
                    room.duplicates += 1
                    continue
                seen.add(client_id)
                room.last_delivery = now
                if client_id.startswith("f:"):
                    room.flood_deliveries += 1
                    continue
                sent = room.sent_at.get(client_id)
                if sent is not None and room.measuring:
                    room.steady_deliveries += 1
                    room.latencies.append(now - sent)
                echo = room.echoes.get(client_id)
                if echo is not None:
                    echo.set()


def chat_frame(client_id: str) -> str:
    return json.dumps({"type": "message", "text": client_id, "client_id": client_id})


async def run(server: Server, sessions: dict[str, str], args: argparse.Namespace) -> dict:
    room = Room()
    url = server.ws_url(f"/ws/chat/{ROOM}/")
    senders = list(sessions.values())[: args.senders]
    sockets: dict[int, object] = {}
    tasks = []
    for start in range(0, args.clients, CONNECT_BATCH):
        batch = range(start, min(start + CONNECT_BATCH, args.clients))
        for index in batch:
            session = senders[index] if index < len(senders) else None
            tasks.append(
                asyncio.create_task(client(index, url, server.origin, session, room, sockets))
            )
        deadline = time.monotonic() + 30
        while len(sockets) < batch.stop and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    if len(sockets) < args.clients:
        raise RuntimeError(f"only {len(sockets)} of {args.clients} clients connected")
    await asyncio.sleep(0.5)

    stop = time.perf_counter() + WARM_UP + args.seconds

    async def steady_sender(index: int, socket) -> None:
        n = 0
        while time.perf_counter() < stop:
            client_id = f"s:{index}:{n}"
            n += 1
            echo = room.echoes[client_id] = asyncio.Event()
            room.sent_at[client_id] = time.perf_counter()
            await socket.send(chat_frame(client_id))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(echo.wait(), ECHO_TIMEOUT)
            del room.echoes[client_id]

    async def measure() -> float:
        await asyncio.sleep(WARM_UP)
        room.measuring = True
        started = time.perf_counter()
        await asyncio.sleep(max(0.0, stop - time.perf_counter()))
        room.measuring = False
        return time.perf_counter() - started

    sender_sockets = [sockets[index] for index in range(args.senders)]
    measured, *_ = await asyncio.gather(
        measure(), *(steady_sender(i, s) for i, s in enumerate(sender_sockets))
    )
    await asyncio.sleep(1.0)

    flood_started = time.perf_counter()
    room.last_delivery = flood_started

    async def flood_sender(index: int, socket) -> None:
        for n in range(args.flood):
            client_id = f"f:{index}:{n}"
            await socket.send(chat_frame(client_id))

    await asyncio.gather(*(flood_sender(i, s) for i, s in enumerate(sender_sockets)))
    expected = args.senders * args.flood * args.clients
    deadline = flood_started + FLOOD_TIMEOUT
    while time.perf_counter() < deadline and room.flood_deliveries < expected:
        if time.perf_counter() - room.last_delivery > QUIET_SECONDS:
            break
        await asyncio.sleep(0.1)
    flood_seconds = max(room.last_delivery - flood_started, 1e-9)

    for socket in sockets.values():
        await socket.close()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "deliveries_per_second": room.steady_deliveries / measured,
        "p50_ms": percentile(room.latencies, 0.50) * 1000,
        "p99_ms": percentile(room.latencies, 0.99) * 1000,
        "flood_loss": 1 - room.flood_deliveries / expected,
        "flood_per_second": room.flood_deliveries / flood_seconds,
        "duplicates": room.duplicates,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--senders", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--flood", type=int, default=50)
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--layers", default=",".join(LAYERS))
    args = parser.parse_args()
    raise_open_file_limit()

    redis = private_redis()
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="sb-bench-") as directory:
            senders = [f"bench-sender-{i}" for i in range(args.senders)]
            template, sessions = prepare_database(Path(directory), [ROOM], senders)
            for server_name in args.servers.split(","):
                for layer in args.layers.split(","):
                    redis.flushall()
                    with Server(server_name, layer, redis.url, template) as server:
                        result = asyncio.run(run(server, sessions, args))
                    results.append((server_name, layer, result))
                    print(f"{server_name:8} {layer:22} {result}", file=sys.stderr, flush=True)
    finally:
        redis.cleanup()

    print(
        f"\n{args.clients} clients in one room, {args.senders} senders; steady {args.seconds:g} s; "
        f"flood {args.flood} messages per sender\n"
    )
    print(
        "| server | channel layer | deliveries/s | p50 ms | p99 ms | flood loss | "
        "flood deliveries/s | vs channels_redis (deliveries/s, p99) |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    reference = {s: r for s, layer, r in results if layer == "channels_redis"}
    for server_name, layer, r in results:
        ratio = ""
        base = reference.get(server_name)
        if base and layer != "channels_redis":
            ratio = (
                f"{r['deliveries_per_second'] / base['deliveries_per_second']:.2f}x, "
                f"{r['p99_ms'] / base['p99_ms']:.2f}x"
            )
        print(
            f"| {server_name} | {LAYER_TITLES[layer]} | {r['deliveries_per_second']:,.0f} | "
            f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['flood_loss']:.1%} | "
            f"{r['flood_per_second']:,.0f} | {ratio} |"
        )


if __name__ == "__main__":
    main()
