"""Presence across processes when one of them dies: its users must leave every open page.

Two Daphne processes on one Redis, with a presence heartbeat and TTL of seconds (the settings
SWITCHBOARD_PRESENCE_HEARTBEAT and SWITCHBOARD_PRESENCE_TTL). A user's only socket is on process
A, an observer's on process B. A is killed with SIGKILL, so it cannot say goodbye for its users:
the observer's page must drop the ghost once its entry expires (TTL after its last heartbeat) and
the next presence sweep runs (every chat.delivery.CHECK_SECONDS), without anyone joining or
leaving. It used to show the ghost until someone else joined.
"""

from __future__ import annotations

import asyncio
import os
import signal

from chat import delivery
from tests.chat_client import ChatClient, create_room, create_sessions

HEARTBEAT_SECONDS = 1.0
TTL_SECONDS = 3.0


def test_an_open_page_loses_the_users_of_a_killed_process_within_the_ttl(
    live_server_factory, fresh_redis
):
    server = live_server_factory(
        redis_url=fresh_redis.url,
        SWITCHBOARD_APRS_REPLAY="",
        SWITCHBOARD_PRESENCE_HEARTBEAT=str(HEARTBEAT_SECONDS),
        SWITCHBOARD_PRESENCE_TTL=str(TTL_SECONDS),
    )
    doomed_port = server.start_daphne()
    observer_port = server.start_daphne()
    doomed = server.processes[0]
    room = "ghosts"
    create_room(server, room)
    sessions = create_sessions(server, ["ghost", "observer"])

    async def scenario() -> tuple[list[str], list[str]]:
        ghost = ChatClient(
            f"ws://127.0.0.1:{doomed_port}", room, sessions["ghost"],
            origin=f"http://127.0.0.1:{doomed_port}", name="ghost",
        )  # fmt: skip
        observer = ChatClient(
            f"ws://127.0.0.1:{observer_port}", room, sessions["observer"],
            origin=f"http://127.0.0.1:{observer_port}", name="observer",
        )  # fmt: skip
        await ghost.start()
        await observer.start()
        assert await observer.wait_until(lambda c: c.present == ["ghost", "observer"], 10)
        # Both heartbeats have run a few times: the ghost is present while its process lives.
        await asyncio.sleep(TTL_SECONDS + delivery.CHECK_SECONDS)
        before = list(observer.present)
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait()
        await observer.wait_until(
            lambda c: c.present == ["observer"],
            TTL_SECONDS + HEARTBEAT_SECONDS + delivery.CHECK_SECONDS + 2,
        )
        after = list(observer.present)
        await ghost.stop()
        await observer.stop()
        return before, after

    before, after = asyncio.run(scenario())
    assert before == ["ghost", "observer"], "a live user dropped out before the kill"
    assert after == ["observer"], f"the observer still shows {after} after the TTL"
    assert server.processes[1].poll() is None, server.log()[-3000:]
