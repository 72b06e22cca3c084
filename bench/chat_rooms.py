"""What private rooms, replies, reactions and search cost on the chat's own paths, in one process.

    .venv/bin/python bench/chat_rooms.py [--messages 2000] [--rounds 5]

On a fresh SQLite file (on tmpfs when the machine has one, as the whole-stack benchmarks), the
service calls a socket makes, timed one by one, median of `--rounds` rounds:

1. posting a message in a public room, with the full-text index's trigger (migration 0004) and,
   for comparison, without it: what search costs every message on SQLite;
2. posting in a private room: the membership check every write there runs;
3. posting a reply, and adding + taking back a reaction (each a numbered room event);
4. the connect check (`chat.access.may_open`) and a history page of 50, public and private;
5. a search over everything posted (20 results, SQLite FTS5).

Prints a Markdown table in microseconds per call. Compare rows of one run; the figures depend on
the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import MEMORY_DISK, setup_django_in_process  # noqa: E402


def timed(call: Any, count: int) -> float:
    """Microseconds per call of `call(i)` over `count` calls."""
    start = time.perf_counter()
    for index in range(count):
        call(index)
    return (time.perf_counter() - start) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000, help="posts per round and case")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    count = max(10, min(args.messages, 50_000))
    rounds = max(1, min(args.rounds, 20))

    with tempfile.TemporaryDirectory(dir=MEMORY_DISK, prefix="sb-bench-rooms-") as directory:
        setup_django_in_process(directory)
        import importlib

        from django.contrib.auth import get_user_model
        from django.db import connection

        from chat import access, membership, search, services
        from chat.models import Room

        fts = importlib.import_module("chat.migrations.0004_message_search")
        user = get_user_model().objects.create_user("bench")
        public = Room.objects.create(slug="bench")
        private, _ = membership.create_private_room(user, "bench")
        target = services.post_message(user, public, "react to me").frame["id"]

        def trigger(on: bool) -> None:
            with connection.cursor() as cursor:
                cursor.execute("DROP TRIGGER IF EXISTS chat_message_fts_insert")
                if on:
                    cursor.execute(fts.SQLITE_CREATE[1])

        def post(room: Room, **extra: Any) -> Any:
            return lambda i: services.post_message(
                user, room, f"message {i} about the friday deployment", **extra
            )

        def react(i: int) -> None:
            services.react(user, public, target, "👍", add=(i % 2 == 0))

        cases: dict[str, list[float]] = {}

        def record(name: str, value: float) -> None:
            cases.setdefault(name, []).append(value)

        for _ in range(rounds):
            trigger(False)
            record("post, public room, no search index", timed(post(public), count))
            trigger(True)
            record("post, public room", timed(post(public), count))
            record("post, private room", timed(post(private), count))
            record("post a reply", timed(post(public, reply_to=target), count))
            record("react / unreact", timed(react, count))
            record(
                "connect check (may_open), public",
                timed(lambda i: access.may_open(user, "bench"), count),
            )
            record(
                "history page of 50, public",
                timed(lambda i: services.history_page(user, public), count // 10),
            )
            record(
                "history page of 50, private",
                timed(lambda i: services.history_page(user, private), count // 10),
            )
            record(
                "search, 20 newest hits",
                timed(lambda i: search.search_messages(user, "friday deploy"), count // 10),
            )

        total = public.messages.count() + private.messages.count()
        print(
            f"{count} calls per case and round ({count // 10} for pages and search), {rounds} rounds, "
            f"{total} messages at the end, SQLite on {MEMORY_DISK or 'disk'}\n"
        )
        print("| case | µs per call (median) | min | max |")
        print("|---|---:|---:|---:|")
        for name, values in cases.items():
            print(
                f"| {name} | {statistics.median(values):.0f} | {min(values):.0f} | {max(values):.0f} |"
            )


if __name__ == "__main__":
    main()
