"""Channels 1.x-style message consumers and filter routes over a real Daphne socket: a room joined
with Group(...).add(message.reply_channel), text frames sent to the group, a sync consumer
sending to the group as a view would, and a path no route takes refused.
Serves realtime/tests/message_server_app.py."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.servers import daphne_serving


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    directory = tmp_path_factory.mktemp("daphne")
    with daphne_serving("realtime.tests.message_server_app:application", directory) as (port, _):
        yield port


def test_a_frame_reaches_everyone_in_the_room_and_nobody_else(port: int) -> None:
    base = f"ws://127.0.0.1:{port}/chat"
    with (
        connect(f"{base}/lobby/") as ann,
        connect(f"{base}/lobby/") as bob,
        connect(f"{base}/kitchen/") as cook,
    ):
        ann.send("hello")
        assert ann.recv(timeout=10) == "lobby: hello"
        assert bob.recv(timeout=10) == "lobby: hello"
        cook.send("soup")
        assert cook.recv(timeout=10) == "kitchen: soup"
        with pytest.raises(TimeoutError):
            bob.recv(timeout=0.3)


def test_a_sync_consumer_sends_to_the_group_like_a_view_would(port: int) -> None:
    with connect(f"ws://127.0.0.1:{port}/chat/hall/") as listener:
        url = f"http://127.0.0.1:{port}/say/hall/?text=doors+open"
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.status == 202
        assert listener.recv(timeout=10) == "hall: doors open"


def test_a_path_no_route_takes_is_refused(port: int) -> None:
    with pytest.raises(InvalidStatus), connect(f"ws://127.0.0.1:{port}/nowhere/"):
        pass
