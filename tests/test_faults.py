"""Faults in the production shape (two Daphne processes, a worker, PostgreSQL, Redis):

- Redis stops for several seconds in the middle of a chat and comes back: no process dies,
  readiness reports the outage and its end; clients whose connections are cut during the outage,
  and whose Daphne is restarted after it, reconnect by themselves with `?after=`; every message
  acknowledged is saved and every client ends with every saved message exactly once, in order.
- The notifications worker is killed with SIGKILL in the middle of an announcement to thousands of
  users and started again: every user gets the notification, none twice, and open notification
  streams receive it live exactly once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import psycopg
import websockets

from notifications import protocol as notification_protocol
from tests.chat_client import (
    ChatClient,
    clients_across_processes,
    create_room,
    create_sessions,
    room_message_ids,
)
from tests.servers import PYTHON, ROOT

OUTAGE_SECONDS = 5.0
FANOUT_USERS = 3000
BATCH = notification_protocol.FANOUT_BATCH_SIZE


def readiness(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


async def wait_for_readiness(ports: list[int], status: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answers = [await asyncio.to_thread(readiness, port) for port in ports]
        if all(answer == status for answer in answers):
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"/readyz did not answer {status} on {ports} within {timeout}s")


def test_chat_survives_a_redis_outage_and_clients_end_with_every_message_once(deployment):
    """Clients talk on both processes; Redis stops and comes back. During the outage every
    client's connection is cut (it reconnects with `?after=` to a process without Redis), and
    after it one Daphne is restarted on its port (its clients reconnect to the new process).
    Every message the server acknowledged is saved, and every client ends with every saved
    message exactly once, in order, without an error frame."""
    server = deployment
    room = "outage"
    create_room(server, room)
    sessions = create_sessions(server, [f"outage-{i}" for i in range(4)])
    phase = ["before"]  # when each message was sent, relative to the outage
    restarted_port = server.ports[0]

    async def scenario() -> list[ChatClient]:
        clients = clients_across_processes(server, room, sessions)
        for client in clients:
            await client.start()
        stop = asyncio.Event()

        async def talk(client: ChatClient) -> None:
            n = 0
            while not stop.is_set():
                if await client.say(f"{client.name} line {n} {phase[0]}"):
                    n += 1
                await asyncio.sleep(0.05)

        talkers = [asyncio.create_task(talk(client)) for client in clients]
        await asyncio.sleep(1.5)
        phase[0] = "during"
        await asyncio.to_thread(server.redis.stop)
        await wait_for_readiness(server.ports, 503)
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        for client in clients:
            await client.drop()
        for client in clients:
            await client.wait_until(lambda c: c.connects >= 2, 15, "the reconnect after the drop")
        await asyncio.sleep(OUTAGE_SECONDS / 2)
        await asyncio.to_thread(server.redis.start)
        await wait_for_readiness(server.ports, 200)
        phase[0] = "after"
        await asyncio.sleep(1.0)
        await asyncio.to_thread(server.restart_daphne, restarted_port)
        for client in clients:
            if client.ws_base.endswith(f":{restarted_port}"):
                await client.wait_until(
                    lambda c: c.connects >= 3, 15, "the reconnect after the restart"
                )
        await asyncio.sleep(1.5)  # the chat goes on after the restart
        stop.set()
        await asyncio.gather(*talkers)

        saved = await asyncio.to_thread(room_message_ids, server, room)
        await asyncio.gather(
            *(
                client.wait_until(
                    lambda c: set(c.ids) >= set(saved),
                    30,
                    lambda c: f"saved messages, missing {sorted(set(saved) - set(c.ids))[:10]}",
                )
                for client in clients
            )
        )
        await asyncio.sleep(0.3)  # a late duplicate would arrive now
        for client in clients:
            await client.stop()
        return clients

    clients = asyncio.run(scenario())
    saved = room_message_ids(server, room)
    assert saved
    for client in clients:
        assert client.errors == [], f"{client.name} got error frames: {client.errors[:3]}"
        assert client.connects >= 2, f"{client.name} never reconnected"
        assert client.duplicates == [], f"{client.name} got messages twice: {client.duplicates}"
        assert client.ids == saved, f"{client.name} is missing or misordering messages"
        assert client.out_of_order == [], client.name
    # Acknowledged means saved, and everything saved reached its sender as acknowledged.
    texts = {message_id: clients[0].frames[message_id] for message_id in saved}
    for client in clients:
        own = {i for i, f in texts.items() if f["client_id"].startswith(f"{client.name}-")}
        assert set(client.acknowledged.values()) == own, client.name
        said = [texts[i]["text"] for i in sorted(own)]
        assert any(t.endswith(" before") for t in said), client.name
        assert any(t.endswith(" during") for t in said), client.name
        assert any(t.endswith(" after") for t in said), client.name


def test_worker_killed_mid_fanout_and_restarted_notifies_everyone_exactly_once(
    deployment, postgres_server
):
    server = deployment
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "User = get_user_model()\n"
        "existing = set(User.objects.filter(username__startswith='fanout-').values_list("
        "'username', flat=True))\n"
        f"names = [f'fanout-{{n:05d}}' for n in range({FANOUT_USERS})]\n"
        "User.objects.bulk_create([User(username=n, password='!') for n in names "
        "if n not in existing])\n"
    )
    text = f"announcement {uuid.uuid4().hex}"
    with psycopg.connect(postgres_server, autocommit=True) as database:
        # Listeners inside the first batches (the worker dies while one of them is in flight:
        # saved, maybe not yet pushed) and, created last, in the last batch.
        ordered = database.execute(
            "SELECT username, is_staff FROM auth_user WHERE is_active ORDER BY id LIMIT %s",
            [3 * BATCH],
        ).fetchall()
        in_flight = [
            ordered[position][0]
            for position in (0, BATCH // 2, BATCH - 1, BATCH, 2 * BATCH - 1, 2 * BATCH)
            if not ordered[position][1]
        ]
        listeners = create_sessions(server, [*in_flight, "fanout-listener-a", "fanout-listener-b"])
        active_users = database.execute(
            "SELECT count(*) FROM auth_user WHERE is_active"
        ).fetchone()[0]

        def delivered() -> int:
            return database.execute(
                "SELECT count(*) FROM notifications_notification WHERE text = %s", [text]
            ).fetchone()[0]

        async def scenario() -> tuple[int, list[list[dict]]]:
            streams = []
            for i, session in enumerate(listeners.values()):
                port = server.ports[i % 2]
                stream = await websockets.connect(
                    f"ws://127.0.0.1:{port}/ws/notifications/",
                    origin=f"http://127.0.0.1:{port}",
                    additional_headers={"Cookie": f"sessionid={session}"},
                )
                assert json.loads(await stream.recv())["type"] == notification_protocol.UNREAD
                streams.append(stream)

            announce = subprocess.Popen(
                [
                    PYTHON,
                    "manage.py",
                    "shell",
                    "-c",
                    f"from notifications import notify_all; notify_all(verb='announcement', "
                    f"text={text!r})",
                ],
                env=server.env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            worker = next(p for p in server.processes if "runworker" in p.args)
            deadline = time.monotonic() + 60
            while delivered() == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            os.kill(worker.pid, signal.SIGKILL)
            worker.wait()
            at_kill = delivered()
            server.processes.remove(worker)
            await asyncio.to_thread(announce.wait, 60)
            await asyncio.sleep(0.5)
            server.start_process(
                "runworker", notification_protocol.FANOUT_CHANNEL, name="worker-restarted"
            )

            deadline = time.monotonic() + 60
            while delivered() < active_users and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.0)  # anything sent twice arrives now

            received: list[list[dict]] = []
            for stream in streams:
                frames = []
                while True:
                    try:
                        frames.append(json.loads(await asyncio.wait_for(stream.recv(), 0.5)))
                    except TimeoutError:
                        break
                received.append(frames)
                await stream.close()
            return at_kill, received

        at_kill, received = asyncio.run(scenario())
        duplicates = database.execute(
            "SELECT recipient_id, count(*) FROM notifications_notification WHERE text = %s "
            "GROUP BY recipient_id HAVING count(*) > 1",
            [text],
        ).fetchall()
        total = delivered()
        missing = database.execute(
            "SELECT count(*) FROM auth_user u WHERE u.is_active AND NOT EXISTS (SELECT 1 FROM "
            "notifications_notification n WHERE n.recipient_id = u.id AND n.text = %s)",
            [text],
        ).fetchone()[0]

    assert 0 < at_kill < active_users, f"the kill did not land mid-fan-out ({at_kill} done)"
    assert duplicates == [], f"users notified twice: {duplicates[:10]}"
    assert missing == 0 and total == active_users
    for name, frames in zip(listeners, received, strict=True):
        live = [
            f
            for f in frames
            if f["type"] == notification_protocol.NOTIFICATION and f["text"] == text
        ]
        if name in in_flight:
            # At least once, and only ever that one notification: a worker that dies between
            # its push and marking the rows pushed makes the next run push them again, and the
            # browser shows a notification id once.
            assert live, f"{name}, inside the batch in flight, got nothing live"
            assert len({f["id"] for f in live}) == 1 and len(live) <= 2, (name, live)
        else:
            assert len(live) == 1, f"{name} got the announcement {len(live)} times live"
