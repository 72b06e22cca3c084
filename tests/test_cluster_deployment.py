"""The chat's multi-process end-to-end test, once more with the channel layer on a 3-master Redis
Cluster (``SWITCHBOARD_LAYER_CLUSTER``): two Daphne processes and a worker, chat users spread
over both processes see every message once and in order. The chat's own shared state
(presence, rate limits) stays on the plain Redis of ``REDIS_URL``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from notifications import protocol as notification_protocol
from tests.servers import LiveServer, RedisCluster, RedisServer
from tests.test_multiprocess import (
    test_chat_clients_on_two_processes_see_every_message_once_in_order,
)

__all__ = ["test_chat_clients_on_two_processes_see_every_message_once_in_order"]


@pytest.fixture(scope="module")
def deployment(live_server_factory) -> Iterator[LiveServer]:
    """As tests/conftest.py's deployment, with the layer on a private Redis Cluster, on a SQLite
    file of its own (the session's PostgreSQL database already holds the room this test fills
    when tests/test_multiprocess.py ran first)."""
    redis = RedisServer()
    redis.start()
    cluster = RedisCluster()
    try:
        cluster.start()
        server = live_server_factory(
            redis_url=redis.url,
            SWITCHBOARD_LAYER_CLUSTER=cluster.url,
            SWITCHBOARD_CHAT_RATE_LIMIT="1000/1",
            SWITCHBOARD_APRS_REPLAY="",
            SWITCHBOARD_WORKER_LEASE="2",
        )
        server.start_daphne()
        server.start_daphne()
        server.start_process("runworker", notification_protocol.FANOUT_CHANNEL, name="worker")
        yield server
        died = [process.args for process in server.processes if process.poll() is not None]
        server.stop()
        assert not died, f"processes died: {died}\n{server.log()[-4000:]}"
    finally:
        cluster.cleanup()
        redis.cleanup()
