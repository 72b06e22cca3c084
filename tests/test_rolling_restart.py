"""A rolling restart of two web processes on Redis and PostgreSQL, with chat users talking all
the while: each process in turn gets SIGTERM, drains (its sockets close with 1012 and reconnect to
the other process with `?after=`), exits 0 and is replaced by a fresh one.

The users behave like the browser (static/js/chat.js and socket.js): a message waits in an outbox
until the server echoes it back, and what was not echoed is sent again after a reconnect. Like the
page, a user keeps only a few messages in flight and paces them well inside the socket's frame
budget (`realtime.generic.frames.FrameLimits`), so no message is refused: a refusal, or a message
never echoed, fails the test with the messages it concerns. At the end every message each user
typed is saved exactly once, every user saw exactly the saved sequence, and presence holds exactly
the open connections: no ghost of a drained process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from typing import Any

import pytest

from chat import protocol
from tests.chat_client import ChatClient, create_room, create_sessions
from tests.servers import LiveServer, RedisServer

USERS = 4
ROOM = "rolling"
# Each user types until both processes were replaced, but at most this many messages: the load
# (and so the wait for the last echoes) is bounded however slow the machine is.
MAX_TYPED = 200
TYPING_INTERVAL = 0.03
# Like chat.js: at most this many messages sent and not yet echoed, at most one every
# SEND_INTERVAL seconds (10 a second: half the socket's budget of 20, so no refusals).
IN_FLIGHT = 8
SEND_INTERVAL = 0.1
# The wait for the last echoes: a base, plus per unconfirmed message (a loaded server answers one
# in far less; a lost one never is).
CONFIRM_BASE_SECONDS = 30
CONFIRM_SECONDS_PER_MESSAGE = 0.3


class BrowserLikeUser(ChatClient):
    """A ChatClient that reconnects to whichever web process is up (as a proxy would send it),
    and keeps an outbox like chat.js: messages are sent from it a few at a time, and those not
    echoed are sent again after a reconnect (once the replay shows what was saved)."""

    def __init__(self, live_ports: list[int], index: int, room: str, session: str, name: str):
        super().__init__("", room, session, origin="http://127.0.0.1", name=name)
        self.live_ports = live_ports
        self.index = index
        # client_id -> (text, number of the connection it was sent on; 0: not sent), in the order
        # typed, until the server echoes it
        self.outbox: dict[str, tuple[str, int]] = {}
        self.typed: list[str] = []
        self.ports_used: list[int] = []
        self.replayed_on = 0  # the connection whose replay (history) has arrived
        self._sender: asyncio.Task | None = None

    @property
    def url(self) -> str:
        port = self.live_ports[(self.index + self.connects) % len(self.live_ports)]
        self.ports_used.append(port)
        base = f"ws://127.0.0.1:{port}/ws/chat/{self.room}/"
        return f"{base}?after={self.last_id}" if self.connects else base

    async def start(self, timeout: float = 15.0) -> None:
        await super().start(timeout)
        self._sender = asyncio.create_task(self._send_outbox(), name=f"outbox-{self.name}")

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
        await super().stop()

    def _handle(self, frame: dict[str, Any]) -> None:
        super()._handle(frame)
        if frame.get("type") == protocol.HISTORY and not frame.get("has_more"):
            # The replay after this (re)connect is complete: what is still in the outbox never
            # reached the database (or is on its way, and the server answers a resend with the
            # stored message). Later history frames are resyncs: nothing changes.
            self.replayed_on = self.connects

    def _message(self, message: dict[str, Any]) -> None:
        super()._message(message)
        if message.get("user") == self.name:
            self.outbox.pop(message.get("client_id", ""), None)

    def unconfirmed(self) -> str:
        """What the server has not echoed yet, for a failure message."""
        waiting = list(self.outbox)
        return f"echoes of {len(waiting)} typed messages: {waiting[:10]}"

    async def _send_outbox(self) -> None:
        """Send the oldest message not sent on this connection, when the replay is in and fewer
        than IN_FLIGHT are unanswered; one every SEND_INTERVAL at most."""
        while True:
            await asyncio.sleep(SEND_INTERVAL)
            socket, connection = self._socket, self.connects
            if socket is None or self.replayed_on != connection:
                continue
            in_flight = sum(1 for _, sent_on in self.outbox.values() if sent_on == connection)
            if in_flight >= IN_FLIGHT:
                continue
            unsent = next((item for item in self.outbox.items() if item[1][1] != connection), None)
            if unsent is None:
                continue
            client_id, (text, _) = unsent
            self.outbox[client_id] = (text, connection)
            frame = {"type": protocol.MESSAGE, "text": text, "client_id": client_id}
            # A socket that went down meanwhile: the outbox keeps the message for the next one.
            with contextlib.suppress(Exception):
                await socket.send(json.dumps(frame))

    def type(self, text: str) -> None:
        self.outbox[f"{self.name}-{len(self.typed)}"] = (text, 0)
        self.typed.append(text)


def saved_messages(server: LiveServer) -> list[tuple[int, str]]:
    code = (
        "import json\n"
        "from chat.models import Message\n"
        f"rows = Message.objects.filter(room__slug={ROOM!r}, deleted=None).order_by('id')\n"
        "print(json.dumps(list(rows.values_list('id', 'text'))))\n"
    )
    return [tuple(row) for row in json.loads(server.shell(code).strip().splitlines()[-1])]


def presence_entries(server: LiveServer) -> list[str]:
    """Every connection entry of the room's presence set in Redis, expired or not."""
    code = (
        "import json, redis\n"
        "from django.conf import settings\n"
        "from chat.redis_connection import KEY_PREFIX\n"
        "client = redis.Redis.from_url(settings.REDIS_URL)\n"
        f"members = client.zrange(KEY_PREFIX + 'presence:' + {ROOM!r}, 0, -1)\n"
        "print(json.dumps([m.decode() for m in members]))\n"
    )
    return json.loads(server.shell(code).strip().splitlines()[-1])


@pytest.fixture
def two_web_processes(live_server_factory, postgres_server):
    redis = RedisServer()
    redis.start()
    server = live_server_factory(
        redis_url=redis.url,
        database_url=postgres_server,
        SWITCHBOARD_CHAT_RATE_LIMIT="1000/1",
        SWITCHBOARD_APRS_REPLAY="",
        SWITCHBOARD_SHUTDOWN_GRACE="10",
    )
    server.start_daphne()
    server.start_daphne()
    yield server
    server.stop()
    redis.cleanup()


# Two drains, two process starts and the waits for every user: well within a minute on an idle
# machine, but the suite's 120 s default is too tight on a loaded one. The echo waits are bounded
# by MAX_TYPED (at most 30 + 0.3 * 200 s each, all users at once).
@pytest.mark.timeout(420)
def test_rolling_restart_loses_no_message_and_leaves_no_presence_ghost(two_web_processes):
    server = two_web_processes
    create_room(server, ROOM)
    sessions = create_sessions(server, [f"roll-{i}" for i in range(USERS)])
    live_ports = list(server.ports)
    processes = dict(zip(server.ports, server.processes, strict=True))
    exit_codes: list[int] = []

    def restart(port: int) -> None:
        """SIGTERM one web process, wait for it to drain and exit, start its replacement."""
        live_ports.remove(port)
        process = processes.pop(port)
        process.send_signal(signal.SIGTERM)
        exit_codes.append(process.wait(60))
        new_port = server.start_daphne()
        processes[new_port] = server.processes[-1]
        live_ports.append(new_port)

    async def scenario() -> tuple[list[BrowserLikeUser], list[str]]:
        users = [
            BrowserLikeUser(live_ports, i, ROOM, session, name)
            for i, (name, session) in enumerate(sessions.items())
        ]
        for user in users:
            await user.start()
        talking = True

        async def talk(user: BrowserLikeUser) -> None:
            while talking and len(user.typed) < MAX_TYPED:
                user.type(f"{user.name} says {len(user.typed)}")
                await asyncio.sleep(TYPING_INTERVAL)

        talkers = [asyncio.create_task(talk(user)) for user in users]
        for port in list(live_ports):
            await asyncio.to_thread(restart, port)
            # Everyone is back before the next process goes.
            for user in users:
                await user.wait_connected(30)
        talking = False
        await asyncio.gather(*talkers)
        await asyncio.gather(
            *(
                user.wait_until(
                    lambda u: not u.outbox or bool(u.errors),
                    CONFIRM_BASE_SECONDS + CONFIRM_SECONDS_PER_MESSAGE * len(user.outbox),
                    BrowserLikeUser.unconfirmed,
                )
                for user in users
            )
        )
        for user in users:
            assert user.errors == [], f"{user.name}: refused: {user.errors[:3]}"
        typed = [text for user in users for text in user.typed]
        await asyncio.gather(
            *(
                user.wait_until(
                    lambda u: len(u.ids) >= len(typed),
                    CONFIRM_BASE_SECONDS,
                    lambda u: f"{len(typed)} messages, seen {len(u.ids)}",
                )
                for user in users
            )
        )
        await asyncio.sleep(0.3)  # a duplicate would arrive now
        during = await asyncio.to_thread(presence_entries, server)
        for user in users:
            await user.stop()
        return users, during

    users, presence_while_connected = asyncio.run(scenario())
    assert exit_codes == [0, 0], server.log()[-3000:]
    saved = saved_messages(server)
    saved_texts = [text for _, text in saved]
    typed = sorted(text for user in users for text in user.typed)
    assert sorted(saved_texts) == typed, "a typed message was lost or saved twice"
    for user in users:
        assert user.ids == [message_id for message_id, _ in saved], user.name
        assert user.duplicates == [], user.name
        assert 1012 in user.close_codes, (
            f"{user.name} was not told to reconnect: {user.close_codes}"
        )
        assert None not in user.close_codes, f"{user.name} lost its connection: {user.close_codes}"
        assert user.connects >= 2
    # Presence: one entry per open socket while connected (the drained processes removed theirs),
    # and none once everyone has left.
    assert sorted(entry.split("\x1f")[0] for entry in presence_while_connected) == sorted(
        sessions
    ), (presence_while_connected, [user.close_codes for user in users], server.log()[-3000:])
    server_log = server.log()
    assert server_log.count("Drained in") == 2, server_log[-3000:]
    deadline = time.monotonic() + 15
    while presence_entries(server) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert presence_entries(server) == []
