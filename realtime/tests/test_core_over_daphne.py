"""The core over a real Daphne socket: nested routing behind middleware, long-polls that wait
without threads, wake on a group event and vanish cleanly when the client goes away, and a plain
AsyncConsumer that passes layer frames to a raw client only while its socket is open.
Serves realtime/tests/core_server_app.py."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.client import connect

from tests.raw_websocket import RawWebSocket
from tests.servers import daphne_serving


class Daphne:
    def __init__(self, port: int, process: subprocess.Popen) -> None:
        self.port = port
        self.process = process

    def get_json(self, path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=10) as reply:
            return json.loads(reply.read())

    def tell_plain(self, query: str) -> None:
        """A group_send to the plain sockets (see core_server_app.TellPlain)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/plain/?{query}", timeout=10):
            pass

    def wait_until(self, condition: Any, timeout: float = 10.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            status = self.get_json("/status/")
            if condition(status) or time.monotonic() > deadline:
                return status
            time.sleep(0.05)


@pytest.fixture(scope="module")
def daphne(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daphne]:
    directory = tmp_path_factory.mktemp("daphne")
    with daphne_serving("realtime.tests.core_server_app:application", directory) as served:
        yield Daphne(*served)


async def open_poll(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /poll/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    await writer.drain()
    return reader, writer


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    raw = await asyncio.wait_for(reader.read(), 10)
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), body


def test_nested_router_behind_middleware_routes_a_real_websocket(daphne: Daphne) -> None:
    with connect(f"ws://127.0.0.1:{daphne.port}/ws/north/echo/ann/") as socket:
        socket.send("hi")
        assert socket.recv(timeout=10) == "north/ann/middleware: hi"


async def test_waiting_long_polls_answer_when_a_group_event_arrives(daphne: Daphne) -> None:
    polls = [await open_poll(daphne.port) for _ in range(3)]
    await asyncio.to_thread(daphne.wait_until, lambda status: status["waiting"] == 3)
    await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{daphne.port}/ring/?n=7")
    for reader, writer in polls:
        status, body = await read_response(reader)
        writer.close()
        assert (status, json.loads(body)) == (200, {"rang": 7})


async def test_waiting_long_polls_hold_no_threads(daphne: Daphne) -> None:
    before = await asyncio.to_thread(daphne.get_json, "/status/")
    polls = [await open_poll(daphne.port) for _ in range(40)]
    during = await asyncio.to_thread(daphne.wait_until, lambda status: status["waiting"] == 40)
    assert during["waiting"] == 40
    assert during["threads"] <= before["threads"]
    await asyncio.to_thread(urllib.request.urlopen, f"http://127.0.0.1:{daphne.port}/ring/?n=1")
    for reader, writer in polls:
        assert (await read_response(reader))[0] == 200
        writer.close()


async def test_client_leaving_a_long_poll_ends_it_on_the_server(daphne: Daphne) -> None:
    _, writer = await open_poll(daphne.port)
    await asyncio.to_thread(daphne.wait_until, lambda status: status["waiting"] == 1)
    writer.close()
    await writer.wait_closed()
    after = await asyncio.to_thread(daphne.wait_until, lambda status: status["waiting"] == 0)
    assert after["waiting"] == 0
    assert daphne.process.poll() is None


def test_a_plain_consumer_passes_layer_frames_only_while_its_socket_is_open(
    daphne: Daphne,
) -> None:
    opened: dict[str, Any] = {}

    def open_socket() -> None:
        try:
            opened["socket"] = RawWebSocket.open(
                daphne.port, "/ws/plain/", origin=f"http://127.0.0.1:{daphne.port}"
            )
        except (OSError, TimeoutError) as error:
            opened["error"] = error

    opener = threading.Thread(target=open_socket)
    opener.start()
    daphne.wait_until(lambda status: status["plain"] == 1)
    # Before the consumer accepts, a frame from the layer would make Daphne fail the handshake.
    daphne.tell_plain("text=too-early")
    daphne.tell_plain("accept=1")
    opener.join(15)
    assert "socket" in opened, f"the handshake failed: {opened.get('error')}"
    socket = opened["socket"]
    try:
        daphne.tell_plain("text=hello")
        daphne.tell_plain("close=4000")
        assert socket.texts_until_close() == (["hello"], 4000)
        # The client ignores the close and keeps talking; the layer keeps sending too.
        socket.send_text("anyone there?")
        daphne.tell_plain("text=late")
        daphne.tell_plain("close=4001")
        assert socket.texts_until_close(timeout=1)[0] == []
        assert daphne.get_json("/status/")["echoed"] == 0
    finally:
        socket.abort()
    assert daphne.wait_until(lambda status: status["plain"] == 0)["plain"] == 0
    assert daphne.process.poll() is None
