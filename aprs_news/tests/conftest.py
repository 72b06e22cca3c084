"""Fixtures for the news tests: packets taken from the shipped sample capture, a fresh layer."""

from __future__ import annotations

from pathlib import Path

import pytest

from aprs_news.gateway import read_capture

SAMPLE = Path(__file__).resolve().parent.parent / "samples" / "sample.aprs"
SAMPLE_LINES = [text for _, text in read_capture(SAMPLE)]


def sample_packet(fragment: str, nth: int = 0) -> str:
    """The nth line of the sample capture that contains `fragment` (tests use real lines)."""
    found = [line for line in SAMPLE_LINES if fragment in line]
    if len(found) <= nth:
        raise LookupError(f"the sample capture has {len(found)} lines with {fragment!r}")
    return found[nth]


@pytest.fixture(scope="module")
def news_server(live_server_factory, redis_server):
    """Daphne on a Redis-backed layer, so a separate `aprs_gateway` process reaches its sockets;
    no embedded replay, so the tests decide what arrives. One per test module."""
    server = live_server_factory(redis_url=redis_server.url, SWITCHBOARD_APRS_REPLAY="")
    server.start_daphne()
    yield server
    server.stop()
