"""A rolling restart of two web processes on Redis and PostgreSQL, with chat users talking all
the while: each process in turn gets SIGTERM, drains (its sockets close with 1012 and reconnect to
the other process with `?after=`), exits 0 and is replaced by a fresh one.

The users behave like the browser (static/js/chat.js and socket.js): a message waits in an outbox
until the server echoes it back, and what was not echoed is sent again after a reconnect. At the
end every message each user typed is saved exactly once, every user saw exactly the saved
sequence, and presence holds exactly the open connections: no ghost of a drained process."""

from __future__ import annotations

import asyncio
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


class BrowserLikeUser(ChatClient):
    """A ChatClient that reconnects to whichever web process is up (as a proxy would send it),
    and keeps an outbox like chat.js: unconfirmed messages are sent again after a reconnect."""

    def __init__(self, live_ports: list[int], index: int, room: str, session: str, name: str):
        super().__init__("", room, session, origin="http://127.0.0.1", name=name)
        self.live_ports = live_ports
        self.index = index
        # client_id -> (text, number of the connection it was sent on), until the server echoes it
        self.outbox: dict[str, tuple[str, int]] = {}
        self.typed: list[str] = []
        self.ports_used: list[int] = []
        self.flushed_on = 0  # the connection number whose replay flushed the outbox

    @property
    def url(self) -> str:
        port = self.live_ports[(self.index + self.connects) % len(self.live_ports)]
        self.ports_used.append(port)
        base = f"ws://127.0.0.1:{port}/ws/chat/{self.room}/"
        return f"{base}?after={self.last_id}" if self.connects else base

    def _handle(self, frame: dict[str, Any]) -> None:
        super()._handle(frame)
        if (
            frame.get("type") == protocol.HISTORY
            and not frame.get("has_more")
            and self.flushed_on != self.connects
        ):
            # The replay after this (re)connect is complete: what is still in the outbox never
            # reached the database. (Later history frames are resyncs, not a new connection.)
            self.flushed_on = self.connects
            asyncio.get_running_loop().create_task(self._flush_outbox())

    def _message(self, message: dict[str, Any]) -> None:
        super()._message(message)
        if message.get("user") == self.name:
            self.outbox.pop(message.get("client_id", ""), None)

    async def _flush_outbox(self) -> None:
        for client_id, (text, sent_on) in list(self.outbox.items()):
            if sent_on != self.connects:
                await self._send(client_id, text)

    async def _send(self, client_id: str, text: str) -> None:
        socket = self._socket
        if socket is None:
            return
        self.outbox[client_id] = (text, self.connects)
        frame = {"type": protocol.MESSAGE, "text": text, "client_id": client_id}
        try:
            await socket.send(json.dumps(frame))
        except Exception:
            return  # the socket went down; the outbox keeps the message for the next connection

    async def type(self, text: str) -> None:
        client_id = f"{self.name}-{len(self.typed)}"
        self.typed.append(text)
        self.outbox[client_id] = (text, 0)
        await self._send(client_id, text)


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
# machine, but the suite's 120 s default is too tight on a loaded one.
@pytest.mark.timeout(300)
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
            n = 0
            while talking and n < 400:
                await user.type(f"{user.name} says {n}")
                n += 1
                await asyncio.sleep(0.03)

        talkers = [asyncio.create_task(talk(user)) for user in users]
        for port in list(live_ports):
            await asyncio.to_thread(restart, port)
            # Everyone is back before the next process goes.
            for user in users:
                await user.wait_connected(30)
        talking = False
        await asyncio.gather(*talkers)
        for user in users:
            await user.wait_until(lambda u: not u.outbox, timeout=30)
        typed = [text for user in users for text in user.typed]
        for user in users:
            await user.wait_until(lambda u: len(u.ids) >= len(typed), timeout=30)
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
