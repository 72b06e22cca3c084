"""Benchmark the notifications app: fan-out throughput and waiting long-polls.

    .venv/bin/python bench/notification_feed.py [--users 10000] [--polls 2000] [--daphne-polls 1000]

1. notify_all() to --users active users through the real Worker (in-memory layer, SQLite file):
   users notified per second, end to end (batches of 500: bulk_create + one group_send each).
2. --polls long-polls (NotificationPoll through HttpCommunicator) waiting at once: threads alive
   while they wait, and the time from one notify() to the last of them answering.
3. --daphne-polls long-polls over real sockets to `manage.py serve` (Daphne, Redis layer on a
   private redis-server): the server's thread count while they wait, and the time from a notify()
   in another process to the last answer. Skipped with --daphne-polls 0.

A fresh SQLite database in a temporary directory; nothing else is touched. Numbers depend on the
machine; compare runs on the same one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from harness import private_redis, setup_django_in_process  # noqa: E402

from tests.servers import free_port, login_session_code, stop_process, wait_for_port  # noqa: E402


async def bench_fanout(users: int) -> float:
    from django.contrib.auth import get_user_model

    from notifications import anotify_all, protocol
    from notifications.models import Notification
    from notifications.routing import channel_routes
    from realtime.db import database_sync_to_async
    from realtime.layers import get_channel_layer
    from realtime.routing import ChannelNameRouter
    from realtime.worker import Worker

    User = get_user_model()

    def make_users() -> None:
        User.objects.bulk_create(
            [User(username=f"bench{i}", password="!") for i in range(users)], batch_size=2000
        )

    await database_sync_to_async(make_users)()
    layer = get_channel_layer()
    worker = Worker(ChannelNameRouter(channel_routes), [protocol.FANOUT_CHANNEL], layer)
    running = asyncio.ensure_future(worker.run())
    started = time.perf_counter()
    await anotify_all(verb="announcement", text="benchmark")
    deadline = started + 600
    while time.perf_counter() < deadline:
        done = await database_sync_to_async(Notification.objects.count)()
        if done >= users:
            break
        await asyncio.sleep(0.05)
    elapsed = time.perf_counter() - started
    worker.stop()
    await asyncio.wait_for(running, 30)
    return elapsed


async def bench_polls(polls: int) -> tuple[int, int, float]:
    from django.contrib.auth import get_user_model

    from notifications import anotify
    from notifications.consumers import NotificationPoll
    from notifications.models import Notification
    from realtime.db import database_sync_to_async
    from realtime.testing import HttpCommunicator

    user = await database_sync_to_async(get_user_model().objects.create_user)("poller")

    def newest_id() -> int:
        return Notification.objects.order_by("-id").values_list("id", flat=True).first() or 0

    after = await database_sync_to_async(newest_id)()

    async def as_user(scope, receive, send):
        return await NotificationPoll.as_asgi()(dict(scope, user=user), receive, send)

    baseline = threading.active_count()
    communicators = [
        HttpCommunicator(as_user, "GET", f"/notifications/poll/?after={after}&timeout=60")
        for _ in range(polls)
    ]
    for communicator in communicators:
        await communicator.send_request()
    await asyncio.sleep(max(2.0, polls / 500))  # every poll runs its first query, then waits
    waiting_threads = threading.active_count()
    started = time.perf_counter()
    await anotify(user, verb="test", text="wake up")
    await asyncio.gather(*(c.get_response(timeout=60) for c in communicators))
    return baseline, waiting_threads, time.perf_counter() - started


def process_threads(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


async def hold_polls(port: int, cookie: str, count: int, ready: asyncio.Event) -> list[bytes]:
    """Open `count` connections, each with one waiting poll; return each answer's first line."""
    request = (
        f"GET /notifications/poll/?after=0&timeout=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Cookie: sessionid={cookie}\r\nConnection: close\r\n\r\n"
    ).encode()
    connections = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        connections.append((reader, writer))
    ready.set()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        status = await asyncio.wait_for(reader.readline(), 90)
        await asyncio.wait_for(reader.read(), 30)
        writer.close()
        return status

    return await asyncio.gather(*(answer(r, w) for r, w in connections))


NOTIFY_POLLER = (
    "from django.contrib.auth import get_user_model\n"
    "from notifications import notify\n"
    "notify(get_user_model().objects.get(username='daphne-poller'), verb='bench', text='wake')"
)


def bench_daphne_polls(directory: str, count: int) -> tuple[int, int, float]:
    import subprocess
    import urllib.request

    web_port = free_port()
    redis = private_redis()
    env = {
        **os.environ,
        "DJANGO_DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{directory}/daphne.sqlite3",
        "REDIS_URL": redis.url,
        "SWITCHBOARD_APRS_REPLAY": "",
    }
    manage = [sys.executable, str(ROOT / "manage.py")]
    server = None
    try:
        subprocess.run([*manage, "migrate", "-v0"], env=env, check=True)
        cookie = subprocess.run(
            [*manage, "shell", "-c",
             "from django.contrib.auth import get_user_model\n"
             "u = get_user_model().objects.create_user('daphne-poller')\n"
             + login_session_code("u") + "print(key)\n"],
            env=env, check=True, capture_output=True, text=True,
        ).stdout.split()[-1]  # fmt: skip
        server = subprocess.Popen(
            [*manage, "serve", "--port", str(web_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(web_port, process=server)
        baseline = process_threads(server.pid)

        def waiting_polls() -> float:
            url = f"http://127.0.0.1:{web_port}/metrics"
            with urllib.request.urlopen(url, timeout=10) as response:
                for line in response.read().decode().splitlines():
                    if line.startswith('realtime_long_polls_waiting{route="notifications/poll/"}'):
                        return float(line.split()[-1])
            return 0.0

        async def run() -> tuple[int, float]:
            ready = asyncio.Event()
            polls = asyncio.ensure_future(hold_polls(web_port, cookie, count, ready))
            await ready.wait()
            for _ in range(600):  # bounded: 60 s for every poll to reach the server
                if await asyncio.to_thread(waiting_polls) >= count:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)  # let each poll run its first query and start waiting
            threads = process_threads(server.pid)
            await asyncio.to_thread(
                subprocess.run,
                [*manage, "shell", "-c", NOTIFY_POLLER],
                env=env,
                check=True,
                capture_output=True,
            )
            started = time.perf_counter()
            answers = await polls
            elapsed = time.perf_counter() - started
            assert all(b" 200 " in status for status in answers), answers[:3]
            return threads, elapsed

        threads, elapsed = asyncio.run(run())
        return baseline, threads, elapsed
    finally:
        if server is not None:
            stop_process(server)
        redis.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--polls", type=int, default=2000)
    parser.add_argument("--daphne-polls", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sb-bench-notifications-") as directory:
        setup_django_in_process(directory)
        elapsed = asyncio.run(bench_fanout(args.users))
        print(f"notify_all to {args.users} users: {elapsed:.2f} s ({args.users / elapsed:,.0f}/s)")
        baseline, waiting, wake = asyncio.run(bench_polls(args.polls))
        print(
            f"{args.polls} long-polls waiting: threads {baseline} before, {waiting} while waiting; "
            f"all answered {wake * 1000:.0f} ms after one notify()"
        )
        if args.daphne_polls:
            baseline, waiting, wake = bench_daphne_polls(directory, args.daphne_polls)
            print(
                f"{args.daphne_polls} long-polls over Daphne (Redis layer): server threads "
                f"{baseline} idle, {waiting} while they wait; all answered {wake * 1000:.0f} ms "
                "after notify() returned in another process"
            )


if __name__ == "__main__":
    main()
