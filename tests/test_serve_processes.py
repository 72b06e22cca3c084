"""``manage.py serve --processes 3``: three Daphne processes on one port, behind one listening
socket, on Redis and PostgreSQL. Which process serves a socket is read from /proc (the server
end of the TCP connection belongs to exactly one process), so the tests can prove the sockets
of one room really are spread over processes, and that chat, presence, rate limits and
notifications behave as on one process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websockets

from chat import protocol as chat_protocol
from notifications import protocol as notification_protocol
from tests.chat_client import ChatClient, create_room, create_sessions, room_message_ids
from tests.servers import (
    PYTHON,
    ROOT,
    LiveServer,
    RedisServer,
    free_port,
    stop_process,
    wait_for_port,
)

PROCESSES = 3
RATE_LIMIT = 30  # messages per minute and user


class PooledServer:
    """``manage.py serve --processes N`` started by the test, with the ids of its processes."""

    def __init__(self, live: LiveServer) -> None:
        self.live = live
        self.port = free_port()
        self.log_path = live.directory / f"serve-{self.port}.log"
        self.process = subprocess.Popen(
            [PYTHON, "manage.py", "serve", "--port", str(self.port), "--processes", str(PROCESSES)],
            cwd=ROOT,
            env=live.env,
            stdout=self.log_path.open("w"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, timeout=30, process=self.process)
        self.wait_for_children(PROCESSES)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def children(self) -> list[int]:
        """The live server processes (children of the supervisor)."""
        found = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            text = (task / "children").read_text().split()
            found += [int(pid) for pid in text]
        return found

    def wait_for_children(
        self, count: int, timeout: float = 30, without: int | None = None
    ) -> list[int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = self.children()
            if (
                len(pids) == count
                and without not in pids
                and all(listening(pid, self.port) for pid in pids)
            ):
                return pids
            time.sleep(0.1)
        raise AssertionError(f"not {count} serving processes: {self.children()}\n{self.log()}")

    def serving_pid(self, client_port: int) -> int:
        """The process holding the server end of the connection from ``client_port``."""
        inode = connection_inode(self.port, client_port)
        for pid in self.children():
            if inode in socket_inodes(pid):
                return pid
        raise AssertionError(f"no server process holds the connection from port {client_port}")

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> int:
        stop_process(self.process, timeout=30)
        return self.process.returncode


def socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def tcp_entries() -> list[list[str]]:
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            rows += [line.split() for line in list(lines)[1:]]
    return rows


def listening(pid: int, port: int) -> bool:
    inodes = socket_inodes(pid)
    return any(
        row[3] == "0A" and int(row[1].rsplit(":", 1)[1], 16) == port and row[9] in inodes
        for row in tcp_entries()
    )


def connection_inode(server_port: int, client_port: int) -> str:
    for row in tcp_entries():
        local, remote = row[1], row[2]
        if (
            int(local.rsplit(":", 1)[1], 16) == server_port
            and int(remote.rsplit(":", 1)[1], 16) == client_port
        ):
            return row[9]
    raise AssertionError(f"no connection {client_port} -> {server_port} in /proc/net/tcp")


@pytest.fixture(scope="module")
def pooled(live_server_factory, postgres_server) -> Iterator[PooledServer]:
    redis = RedisServer()
    redis.start()
    live = live_server_factory(
        redis_url=redis.url,
        database_url=postgres_server,
        SWITCHBOARD_CHAT_RATE_LIMIT=f"{RATE_LIMIT}/60",
        SWITCHBOARD_APRS_REPLAY="",
    )
    live.start_process("runworker", notification_protocol.FANOUT_CHANNEL, name="worker")
    server = PooledServer(live)
    try:
        yield server
    finally:
        server.stop()
        live.stop()
        redis.cleanup()


def client_port(client: ChatClient) -> int:
    return client._socket.local_address[1]


async def spread_clients(
    server: PooledServer, room: str, sessions: dict[str, str], attempts: int = 20
) -> list[ChatClient]:
    """Connected clients, one per session, over at least two processes (reconnecting the last
    one elsewhere while the kernel happens to hand them all to one process)."""
    clients = [
        ChatClient(f"ws://127.0.0.1:{server.port}", room, key, origin=server.url, name=name)
        for name, key in sessions.items()
    ]
    for client in clients:
        await client.start()
    for _ in range(attempts):
        pids = {server.serving_pid(client_port(client)) for client in clients}
        if len(pids) >= 2:
            return clients
        last = clients[-1]
        await last.stop()
        clients[-1] = ChatClient(
            f"ws://127.0.0.1:{server.port}", room, last.session_key, origin=server.url,
            name=last.name,
        )  # fmt: skip
        await clients[-1].start()
    raise AssertionError("every connection went to one process")


def test_the_processes_share_one_port_and_the_supervisor_restarts_a_dead_one(pooled):
    first = pooled.wait_for_children(PROCESSES)
    victim = first[0]
    os.kill(victim, signal.SIGKILL)
    pids = pooled.wait_for_children(PROCESSES, without=victim)
    assert victim not in pids and len(set(pids) & set(first)) == PROCESSES - 1
    assert "starting it again" in pooled.log()


def test_chat_presence_and_rate_limits_are_shared_by_the_processes(pooled):
    server = pooled.live
    room = "pooled"
    create_room(server, room)
    names = [f"pool-{i}" for i in range(6)]
    sessions = create_sessions(server, names)
    per_client = 10

    async def scenario() -> tuple[list[ChatClient], set[str], list[dict]]:
        clients = await spread_clients(pooled, room, sessions)
        for client in clients:
            for n in range(per_client):
                assert await client.say(f"{client.name} says {n}")
        for client in clients:
            await client.wait_until(lambda c: len(c.ids) >= len(names) * per_client, 30)
        await asyncio.sleep(0.3)  # a duplicate would arrive now
        # Presence: a newcomer, wherever it lands, sees everyone in the room.
        newcomer = create_sessions(server, ["pool-newcomer"])["pool-newcomer"]
        async with websockets.connect(
            f"ws://127.0.0.1:{pooled.port}/ws/chat/{room}/",
            origin=pooled.url,
            additional_headers={"Cookie": f"sessionid={newcomer}"},
        ) as socket:
            users: set[str] = set()
            while not set(names) <= users:
                frame = json.loads(await asyncio.wait_for(socket.recv(), 10))
                if frame["type"] == chat_protocol.PRESENCE:
                    users = set(frame["users"])
        # Rate limit: one user's window is shared by its sockets on every process.
        talker = clients[0]
        sockets = [talker]
        for _ in range(20):
            # A name of its own: client ids are "<name>-<n>", and the server saves a client id
            # once per user (a repeat is answered as a retry), so sockets sharing the talker's
            # name would have their messages taken for the talker's earlier ones.
            extra = ChatClient(
                f"ws://127.0.0.1:{pooled.port}", room, talker.session_key, origin=pooled.url,
                name=f"{talker.name}.{len(sockets)}",
            )  # fmt: skip
            await extra.start()
            sockets.append(extra)
            if len({pooled.serving_pid(client_port(s)) for s in sockets}) >= 2:
                break
        assert len({pooled.serving_pid(client_port(s)) for s in sockets}) >= 2
        for n in range(RATE_LIMIT):
            assert await sockets[n % len(sockets)].say(f"burst {n}")
        deadline = time.monotonic() + 20
        while sum(len(s.errors) for s in sockets) < per_client and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # an extra refusal would arrive now
        errors = [error for s in sockets for error in s.errors]
        for client in [*clients, *sockets[1:]]:
            await client.stop()
        return clients, users, errors

    clients, users, errors = asyncio.run(scenario())
    saved = room_message_ids(server, room)
    for client in clients:
        assert client.duplicates == [] and client.out_of_order == [], client.name
        assert client.ids[: len(names) * per_client] == saved[: len(names) * per_client]
    assert set(names) <= users
    # per_client + RATE_LIMIT messages asked of one window of RATE_LIMIT, through sockets on
    # different processes: exactly RATE_LIMIT were saved, the excess was refused.
    talker = names[0]
    saved_by_talker = server.shell(
        "from chat.models import Message\n"
        f"print(Message.objects.filter(room__slug={room!r}, user__username={talker!r}).count())\n"
    )
    assert int(saved_by_talker.strip().splitlines()[-1]) == RATE_LIMIT
    assert {error["code"] for error in errors} == {chat_protocol.RATE_LIMITED}
    assert len(errors) == per_client


def test_an_announcement_reaches_a_notification_stream_on_another_process(pooled):
    server = pooled.live
    staff = create_sessions(server, ["pool-moderator"], staff=True)["pool-moderator"]
    reader = create_sessions(server, ["pool-reader"])["pool-reader"]

    async def scenario() -> dict:
        async with websockets.connect(
            f"ws://127.0.0.1:{pooled.port}/ws/chat/admin/",
            origin=pooled.url,
            additional_headers={"Cookie": f"sessionid={staff}"},
        ) as console:
            console_pid = pooled.serving_pid(console.local_address[1])
            for _ in range(30):
                stream = await websockets.connect(
                    f"ws://127.0.0.1:{pooled.port}/ws/notifications/",
                    origin=pooled.url,
                    additional_headers={"Cookie": f"sessionid={reader}"},
                )
                if pooled.serving_pid(stream.local_address[1]) != console_pid:
                    break
                await stream.close()
            else:
                pytest.fail("every notification stream landed on the console's process")
            async with stream:
                first = json.loads(await asyncio.wait_for(stream.recv(), 10))
                assert first["type"] == notification_protocol.UNREAD
                await console.send(
                    json.dumps({"type": chat_protocol.ANNOUNCE, "text": "pooled maintenance"})
                )
                while True:
                    frame = json.loads(await asyncio.wait_for(stream.recv(), 20))
                    if frame["type"] == notification_protocol.NOTIFICATION:
                        return frame

    assert "pooled maintenance" in asyncio.run(scenario())["text"]


def test_sigterm_stops_every_process_and_the_supervisor_exits_cleanly(live_server_factory):
    redis = RedisServer()
    redis.start()
    try:
        live = live_server_factory(redis_url=redis.url, SWITCHBOARD_APRS_REPLAY="")
        server = PooledServer(live)
        pids = server.children()
        assert server.stop() == 0
        for pid in pids:
            assert (
                not Path(f"/proc/{pid}").exists()
                or "zombie" in Path(f"/proc/{pid}/status").read_text()
            )
        assert "Switchboard stopped" in server.log()
    finally:
        redis.cleanup()


def test_several_processes_on_the_in_memory_layer_are_refused(live_server_factory):
    live = live_server_factory(SWITCHBOARD_APRS_REPLAY="")
    result = subprocess.run(
        [PYTHON, "manage.py", "serve", "--port", str(free_port()), "--processes", "2"],
        cwd=ROOT,
        env=live.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "needs a channel layer the processes share" in result.stderr


def test_a_leave_and_a_mention_cross_the_processes(pooled):
    """What the chat test above does not cover: presence also shrinks across processes (no
    ghost of a socket closed on another process), and a mention said on one process reaches the
    mentioned user's notification stream, wherever that stream landed."""
    server = pooled.live
    room = "pooled-leave"
    create_room(server, room)
    sessions = create_sessions(server, ["pool-stays", "pool-leaves"])

    async def scenario() -> tuple[list[str], dict, list[str]]:
        stays, leaves = await spread_clients(pooled, room, sessions)
        assert pooled.serving_pid(client_port(stays)) != pooled.serving_pid(client_port(leaves))
        await stays.wait_until(lambda c: set(c.present) == set(sessions), 20)
        together = list(stays.present)
        async with websockets.connect(
            f"ws://127.0.0.1:{pooled.port}/ws/notifications/",
            origin=pooled.url,
            additional_headers={"Cookie": f"sessionid={sessions['pool-stays']}"},
        ) as stream:
            first = json.loads(await asyncio.wait_for(stream.recv(), 10))
            assert first["type"] == notification_protocol.UNREAD
            assert await leaves.say("over here @pool-stays")
            while True:
                frame = json.loads(await asyncio.wait_for(stream.recv(), 20))
                if frame["type"] == notification_protocol.NOTIFICATION:
                    break
        await leaves.stop()
        await stays.wait_until(lambda c: c.present == ["pool-stays"], 20)
        after = list(stays.present)
        await stays.stop()
        return together, frame, after

    together, notification, after = asyncio.run(scenario())
    assert sorted(together) == ["pool-leaves", "pool-stays"]
    assert notification["verb"] == "mention" and notification["actor"] == "pool-leaves"
    assert "over here" in notification["text"]
    assert after == ["pool-stays"]
