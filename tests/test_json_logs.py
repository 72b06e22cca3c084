"""DJANGO_LOG_FORMAT=json over a real web process: every log line is one JSON object with level,
logger and message, and lines logged while serving a request carry its id (the proxy's
X-Request-ID when it sends one); lines logged by a WebSocket's application carry its
connection id."""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.error
import urllib.request

import pytest

from config.logs import ConnectionIdMiddleware, ContextFilter, JsonFormatter

PLAIN_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ [A-Z]+ ")


@pytest.fixture(scope="module")
def json_server(live_server_factory):
    server = live_server_factory(SWITCHBOARD_APRS_REPLAY="", DJANGO_LOG_FORMAT="json")
    server.start_daphne()
    yield server
    server.stop()


def log_entries(server, condition, timeout: float = 15.0) -> list[dict]:
    """The JSON log entries of the server, once one of them satisfies `condition`."""
    deadline = time.monotonic() + timeout
    while True:
        entries = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
        if any(condition(entry) for entry in entries) or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


def test_log_lines_are_json_objects_with_the_request_id(json_server):
    request = urllib.request.Request(
        f"{json_server.url}/no/such/page/", headers={"X-Request-ID": "probe-4711"}
    )
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=20)
    assert error.value.code == 404
    entries = log_entries(json_server, lambda e: e.get("request_id") == "probe-4711")
    not_found = [e for e in entries if e.get("request_id") == "probe-4711"]
    assert not_found, json_server.log()[-2000:]
    assert not_found[0]["level"] == "WARNING"
    assert not_found[0]["logger"] == "django.request"
    assert "/no/such/page/" in not_found[0]["message"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", not_found[0]["time"])
    # Nothing is logged in the plain format any more.
    assert not [line for line in json_server.log().splitlines() if PLAIN_LINE.match(line)]


def test_a_request_without_an_id_gets_a_fresh_one(json_server):
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(f"{json_server.url}/another/missing/page/", timeout=20)
    entries = log_entries(json_server, lambda e: "/another/missing/page/" in e["message"])
    missing = [e for e in entries if "/another/missing/page/" in e["message"]]
    assert missing and re.fullmatch(r"[0-9a-f]{16}", missing[0]["request_id"]), entries


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.setFormatter(JsonFormatter())
        self.addFilter(ContextFilter())

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


async def test_lines_logged_by_a_websocket_carry_its_connection_id_and_exceptions_stay_one_line():
    from realtime.testing import WebsocketCommunicator

    async def app(scope, receive, send):
        await receive()
        logger = logging.getLogger("switchboard.probe")
        logger.info("socket opened")
        try:
            raise ValueError("a bug")
        except ValueError:
            logger.exception("handler failed")
        await send({"type": "websocket.close", "code": 4000})

    handler = Collect()
    logger = logging.getLogger("switchboard.probe")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        socket = WebsocketCommunicator(
            ConnectionIdMiddleware(app), "/ws/x/", headers=[(b"x-request-id", b"socket-0815")]
        )
        connected, _ = await socket.connect()
        assert not connected
    finally:
        logger.removeHandler(handler)
    entries = [json.loads(line) for line in handler.lines]
    assert [e["message"] for e in entries] == ["socket opened", "handler failed"]
    assert all(e["connection_id"] == "socket-0815" for e in entries)
    assert all("request_id" not in e for e in entries)
    assert "ValueError: a bug" in entries[1]["exception"]
    assert all("\n" not in line for line in handler.lines)
