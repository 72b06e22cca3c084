"""Benchmark the notifications app in one process: fan-out throughput and waiting long-polls.

    .venv/bin/python bench/notifications.py [--users 10000] [--polls 2000]

1. notify_all() to --users active users through the real Worker (in-memory layer, SQLite file):
   users notified per second, end to end (batches of 500: bulk_create + one group_send each).
2. --polls long-polls (NotificationPoll through HttpCommunicator) waiting at once: threads alive
   while they wait, and the time from one notify() to the last of them answering.

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


def setup_django(directory: str) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ["DATABASE_URL"] = f"sqlite:///{directory}/bench.sqlite3"
    os.environ.pop("REDIS_URL", None)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


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
    after = await database_sync_to_async(
        lambda: Notification.objects.order_by("-id").values_list("id", flat=True).first() or 0
    )()

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10000)
    parser.add_argument("--polls", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sb-bench-notifications-") as directory:
        setup_django(directory)
        elapsed = asyncio.run(bench_fanout(args.users))
        print(f"notify_all to {args.users} users: {elapsed:.2f} s ({args.users / elapsed:,.0f}/s)")
        baseline, waiting, wake = asyncio.run(bench_polls(args.polls))
        print(
            f"{args.polls} long-polls waiting: threads {baseline} before, {waiting} while waiting; "
            f"all answered {wake * 1000:.0f} ms after one notify()"
        )


if __name__ == "__main__":
    main()
