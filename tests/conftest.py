"""Fixtures of the cross-app tests: Switchboard deployed as in production, on this machine."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from notifications import protocol as notification_protocol
from tests.servers import LiveServer, RedisServer


@pytest.fixture(scope="module")
def deployment(live_server_factory, postgres_server) -> Iterator[LiveServer]:
    """Two Daphne processes and a `notifications-fanout` worker on PostgreSQL and a private Redis
    (`deployment.redis`, which a test may stop and start). Shared by the tests of one module;
    fails the module if any process died during it."""
    redis = RedisServer()
    redis.start()
    server = live_server_factory(
        redis_url=redis.url,
        database_url=postgres_server,
        SWITCHBOARD_CHAT_RATE_LIMIT="1000/1",
        SWITCHBOARD_APRS_REPLAY="",
        SWITCHBOARD_WORKER_LEASE="2",
    )
    server.redis = redis  # type: ignore[attr-defined]
    server.start_daphne()
    server.start_daphne()
    server.start_process("runworker", notification_protocol.FANOUT_CHANNEL, name="worker")
    yield server
    died = [process.args for process in server.processes if process.poll() is not None]
    server.stop()
    redis.cleanup()
    assert not died, f"processes died: {died}\n{server.log()[-4000:]}"
