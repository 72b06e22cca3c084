"""Two notification workers on one fan-out batch, in the production shape (PostgreSQL, Redis, real
worker processes): a worker paused with SIGSTOP past its lease loses the batch to the other, then
resumes and finishes it too. Every user still gets the announcement exactly once.

The pause is made to land where it hurts: the test holds the row locks of the first batch's users
(as a slow concurrent notify() would), so worker A is inside its transaction, waiting for them,
when it is stopped; worker B takes the batch again after A's lease runs out and waits for the same
locks. Then A resumes and the test lets the locks go: A commits its batch first, and B must see
A's notifications once it holds the locks (it used to read "already done" before locking, saw
nothing, and saved the batch a second time).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid

import psycopg

from notifications import protocol as notification_protocol
from tests.servers import PYTHON, ROOT

USERS = notification_protocol.FANOUT_BATCH_SIZE * 2 + 100
LEASE_SECONDS = 2.0  # SWITCHBOARD_WORKER_LEASE of the deployment fixture


def waiting_on_locks(database: psycopg.Connection) -> int:
    """How many other sessions of this database wait for a row lock now."""
    return database.execute(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
    ).fetchone()[0]


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {timeout}s")


def test_a_worker_paused_past_its_lease_and_resumed_duplicates_nothing(deployment, postgres_server):
    server = deployment
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        f"User.objects.bulk_create([User(username=f'pause-{{n:05d}}', password='!') "
        f"for n in range({USERS})], ignore_conflicts=True)\n"
    )
    worker_a = next(p for p in server.processes if "runworker" in p.args)
    text = f"paused announcement {uuid.uuid4().hex}"
    with (
        psycopg.connect(postgres_server, autocommit=True) as database,
        psycopg.connect(postgres_server) as locker,
    ):
        active = database.execute("SELECT count(*) FROM auth_user WHERE is_active").fetchone()[0]
        locker.execute(
            "SELECT id FROM auth_user WHERE is_active ORDER BY id LIMIT %s FOR UPDATE",
            [notification_protocol.FANOUT_BATCH_SIZE],
        )
        subprocess.run(
            [PYTHON, "manage.py", "shell", "-c",
             f"from notifications import notify_all; notify_all(verb='announcement', text={text!r})"],
            env=server.env, cwd=ROOT, check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_for(lambda: waiting_on_locks(database) == 1, 30, "worker A waiting inside its batch")
        os.kill(worker_a.pid, signal.SIGSTOP)
        try:
            worker_b = server.start_process(
                "runworker", notification_protocol.FANOUT_CHANNEL, name="worker-b"
            )
            # B recovers the batch once A's lease is gone, and then waits for the same locks.
            wait_for(
                lambda: waiting_on_locks(database) == 2,
                LEASE_SECONDS * 5 + 30,
                "worker B waiting inside the same batch",
            )
        finally:
            os.kill(worker_a.pid, signal.SIGCONT)
        locker.rollback()  # the locks go; A (first in line) commits, then B
        wait_for(
            lambda: (
                database.execute(
                    "SELECT count(DISTINCT recipient_id) FROM notifications_notification "
                    "WHERE text = %s",
                    [text],
                ).fetchone()[0]
                == active
            ),
            60,
            "every user notified",
        )
        time.sleep(LEASE_SECONDS)  # a late second run of any batch would save its rows now
        duplicates = database.execute(
            "SELECT recipient_id, count(*) FROM notifications_notification WHERE text = %s "
            "GROUP BY recipient_id HAVING count(*) > 1",
            [text],
        ).fetchall()
        total = database.execute(
            "SELECT count(*) FROM notifications_notification WHERE text = %s", [text]
        ).fetchone()[0]
    assert worker_a.poll() is None and worker_b.poll() is None, server.log()[-3000:]
    assert duplicates == [], f"{len(duplicates)} users notified twice, e.g. {duplicates[:5]}"
    assert total == active
    log = server.log()
    assert "Traceback" not in log and "IntegrityError" not in log, log[-4000:]
