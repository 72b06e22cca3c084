"""Benchmark the APRS feed in one process: the gateway's line rate, and APRSNewsConsumer's.

    .venv/bin/python bench/aprs_feed.py [--lines 50000] [--packets 2000]

1. Gateway: a local TCP server (127.0.0.1) sends --lines packet lines, with a keep-alive every
   1000; APRSISGateway reads, decodes and hands each to a counting ASGI app. Lines per second.
2. Consumer: --packets lines of each kind go through the root application (config.asgi, the
   "aprs" route, in-memory layer, SQLite file) by `replay()` at full speed: new news (stored and
   pushed), the same news re-sent (seen-again update), plain positions (parsed, not news) and
   garbage (unparseable). Packets per second for each.

A fresh SQLite database in a temporary directory; nothing else is touched. Numbers depend on the
machine (and, for SQLite, on its CONN_MAX_AGE); compare runs on the same one.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from harness import setup_django_in_process  # noqa: E402


async def gateway_rate(lines: int) -> float:
    from aprs_news.gateway import APRSISGateway, ServerAddress
    from realtime.backoff import Backoff

    packet = b"K1ABC-9>APAT51,WIDE1-1,qAR,KD5ABC-10:!3016.40N/09744.20W>087/052/A=000623\r\n"
    keepalive = b"# aprsc 2.1.19-g730c5c0 23 Nov 2026 12:00:23 GMT T2BENCH 127.0.0.1:14580\r\n"
    received = 0
    done = asyncio.Event()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()  # the login line
        writer.write(b"# logresp N0CALL unverified, server T2BENCH\r\n")
        for start in range(0, lines, 1000):
            writer.write(keepalive + packet * min(1000, lines - start))
            await writer.drain()
        await done.wait()
        writer.close()

    async def app(scope, receive, send) -> None:
        nonlocal received
        while (await receive())["type"] != "aprs.disconnect":
            received += 1
            if received == lines + 1:  # + aprs.connect
                done.set()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gateway = APRSISGateway(
        app, ServerAddress("127.0.0.1", port), callsign="N0CALL", backoff=Backoff(initial=5)
    )
    stop = asyncio.Event()
    started = time.perf_counter()
    running = asyncio.create_task(gateway.run(stop))
    await done.wait()
    elapsed = time.perf_counter() - started
    stop.set()
    await running
    server.close()
    return lines / elapsed


async def consumer_rate(directory: str, kind: str, lines: list[str]) -> float:
    from django.utils.module_loading import import_string

    from aprs_news.gateway import replay

    path = Path(directory) / f"{kind}.aprs"
    path.write_text("\n".join(lines) + "\n")
    application = import_string("config.asgi.application")
    started = time.perf_counter()
    await replay(application, path, stop=asyncio.Event(), speed=1e9, interval=0)
    return len(lines) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=50000)
    parser.add_argument("--packets", type=int, default=2000)
    options = parser.parse_args()
    n = options.packets
    with tempfile.TemporaryDirectory(prefix="sb-bench-aprs-") as directory:
        setup_django_in_process(directory)
        news = [
            f"K1ABC-{i % 16}>APRS,TCPIP*,qAC,T2X::BLN{i % 10}BENCH:Bulletin {i}" for i in range(n)
        ]
        resent = [line.replace("qAC,T2X", "qAR,T2Y") for line in news]
        positions = [
            f"K1ABC-{i % 16}>APRS,TCPIP*,qAC,T2X:!4903.50N/07201.75W-{i}" for i in range(n)
        ]
        garbage = [f"garbage line {i} without a body" for i in range(n)]
        rows = [("gateway: TCP lines to the application", asyncio.run(gateway_rate(options.lines)))]
        for label, lines in [
            ("consumer: new bulletins (stored + pushed)", news),
            ("consumer: re-sent bulletins (seen again)", resent),
            ("consumer: positions (parsed, not news)", positions),
            ("consumer: garbage (unparseable)", garbage),
        ]:
            rows.append((label, asyncio.run(consumer_rate(directory, label.split()[1], lines))))
    print(f"| {'path':<44} | {'per second':>10} |")
    print(f"| {'-' * 44} | {'-' * 10}:|")
    for label, rate in rows:
        print(f"| {label:<44} | {rate:>10,.0f} |")


if __name__ == "__main__":
    main()
