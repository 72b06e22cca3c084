"""Switchboard as it is deployed: two Daphne processes and a worker on one Redis and one
PostgreSQL (both started by the test suite). Chat users connected to different processes see each
other's messages in order, nothing lost or duplicated; an announcement from the staff console on
one process reaches a notification stream on the other through the worker."""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request

import websockets

from chat import protocol as chat_protocol
from notifications import protocol as notification_protocol
from tests.chat_client import (
    ChatClient,
    clients_across_processes,
    create_room,
    create_sessions,
    room_message_ids,
)

CLIENTS = 6
MESSAGES_PER_CLIENT = 20


def catch_up_events(server) -> list[float]:
    """chat_catch_up_events_total of each Daphne process (from its /metrics)."""
    totals = []
    for port in server.ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
        line = next(x for x in text.splitlines() if x.startswith("chat_catch_up_events_total "))
        totals.append(float(line.split()[1]))
    return totals


def test_chat_clients_on_two_processes_see_every_message_once_in_order(deployment):
    server = deployment
    room = "multiprocess"
    create_room(server, room)
    sessions = create_sessions(server, [f"mp-{i}" for i in range(CLIENTS)])

    async def scenario() -> list[ChatClient]:
        clients = clients_across_processes(server, room, sessions)
        for client in clients:
            await client.start()

        async def talk(client: ChatClient) -> None:
            for n in range(MESSAGES_PER_CLIENT):
                assert await client.say(f"{client.name} says {n}")
                await asyncio.sleep(random.uniform(0, 0.02))

        await asyncio.gather(*(talk(client) for client in clients))
        expected = CLIENTS * MESSAGES_PER_CLIENT
        for client in clients:
            await client.wait_until(
                lambda c: len(c.ids) >= expected,
                timeout=30,
                what=lambda c: f"{expected} messages (seen {len(c.ids)})",
            )

        # Live across processes: one sender at a time, everyone else silent, so no later event
        # reveals a lost one and a database catch-up could only come from the periodic check.
        # Every message must reach every client while neither process reads any event from the
        # database (a layer whose processes do not hear each other passes the part above: the
        # catch-up refills everything within its 30 s wait).
        caught_up_before = await asyncio.to_thread(catch_up_events, server)
        for n, sender in enumerate(clients[: len(server.ports)] * 3):
            assert await sender.say(f"{sender.name} alone {n}")
            expected += 1
            for client in clients:
                await client.wait_until(
                    lambda c, n=expected: len(c.ids) >= n,
                    timeout=15,
                    what=f"{sender.name}'s live message {n} from the other process",
                )
        assert await asyncio.to_thread(catch_up_events, server) == caught_up_before
        await asyncio.sleep(0.3)  # anything extra (a duplicate) would arrive now
        for client in clients:
            await client.stop()
        return clients

    clients = asyncio.run(scenario())
    saved = room_message_ids(server, room)
    assert len(saved) == CLIENTS * MESSAGES_PER_CLIENT + 3 * len(server.ports)
    for client in clients:
        assert client.duplicates == [], client.name
        assert client.out_of_order == [], client.name
        assert client.errors == [], client.name
        assert client.ids == saved, f"{client.name} saw a different sequence than the database"
        assert client.connects == 1, f"{client.name} was disconnected"
    # Each sender's own messages arrive in the order it sent them, on every process.
    for client in clients:
        for sender in sessions:
            said = [text for text in client.texts() if text.startswith(f"{sender} says ")]
            assert said == [f"{sender} says {n}" for n in range(MESSAGES_PER_CLIENT)]


def test_console_announcement_reaches_a_notification_stream_on_the_other_process(deployment):
    server = deployment
    staff = create_sessions(server, ["mp-moderator"], staff=True)["mp-moderator"]
    reader = create_sessions(server, ["mp-reader"])["mp-reader"]
    console_port, reader_port = server.ports

    async def scenario() -> list[dict]:
        async with (
            websockets.connect(
                f"ws://127.0.0.1:{reader_port}/ws/notifications/",
                origin=f"http://127.0.0.1:{reader_port}",
                additional_headers={"Cookie": f"sessionid={reader}"},
            ) as stream,
            websockets.connect(
                f"ws://127.0.0.1:{console_port}/ws/chat/admin/",
                origin=f"http://127.0.0.1:{console_port}",
                additional_headers={"Cookie": f"sessionid={staff}"},
            ) as console,
        ):
            first = json.loads(await asyncio.wait_for(stream.recv(), 10))
            assert first["type"] == notification_protocol.UNREAD
            await console.send(
                json.dumps({"type": chat_protocol.ANNOUNCE, "text": "maintenance at noon"})
            )
            frames = []
            while not any(f["type"] == notification_protocol.NOTIFICATION for f in frames):
                frames.append(json.loads(await asyncio.wait_for(stream.recv(), 20)))
            return frames

    frames = asyncio.run(scenario())
    notification = next(f for f in frames if f["type"] == notification_protocol.NOTIFICATION)
    assert "maintenance at noon" in notification["text"]
