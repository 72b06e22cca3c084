"""gateway.py against a fake APRS-IS server on 127.0.0.1, with a tiny recording ASGI app."""

import asyncio
import logging
import re
import time

import pytest

from aprs_news import protocol
from aprs_news.gateway import (
    RECONNECT_BACKOFF,
    APRSISGateway,
    ServerAddress,
    embedded_replay,
    login_line,
    replay,
)
from aprs_news.tests.conftest import sample_packet
from aprs_news.tests.fake_aprsis import CLOSE, LOGIN, FakeAPRSIS
from realtime.backoff import Backoff

BULLETIN = sample_packet("::BLN1WX   :").encode()
STATUS = sample_packet("JA1XQZ>APRS,TCPIP*,qAC,T2TOKYO:>").encode()
WEATHER = sample_packet("CW4412>").encode()
LATIN1 = "OE3QZX>APRS,TCPIP*,qAC,T2AUSTRIA:>Grüße".encode("latin-1")
BANNER = b"# aprsc 2.1.19-g730c5c0\r\n"
LOGRESP = b"# logresp N0CALL unverified, server T2TEST\r\n"
KEEPALIVE = b"# aprsc 2.1.19-g730c5c0 23 Nov 2026 12:00:23 GMT T2TEST 127.0.0.1:14580\r\n"
QUICK = Backoff(initial=0.05, maximum=0.2, jitter=0.0)


class Recorder:
    """An ASGI app that records each run's scope and events; `fail_on` raw text makes it crash,
    `pause` makes it slow."""

    def __init__(self, fail_on: str | None = None, pause: float = 0.0) -> None:
        self.runs: list[tuple[dict, list[dict]]] = []
        self.fail_on = fail_on
        self.pause = pause

    async def __call__(self, scope, receive, send) -> None:
        events: list[dict] = []
        self.runs.append((dict(scope), events))
        while True:
            event = await receive()
            events.append(event)
            if event["type"] == protocol.EVENT_DISCONNECT:
                return
            if self.fail_on and event.get("raw") == self.fail_on:
                raise RuntimeError("consumer bug")
            if self.pause:
                await asyncio.sleep(self.pause)

    def packets(self) -> list[str]:
        return [e["raw"] for _, events in self.runs for e in events if "raw" in e]


async def until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.02)


@pytest.fixture
def fake_server():
    servers = []

    def make(*scripts):
        server = FakeAPRSIS(list(scripts)).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


def gateway_for(server, app, **options) -> APRSISGateway:
    options.setdefault("backoff", QUICK)
    return APRSISGateway(
        app,
        ServerAddress.parse(server.address),
        callsign="N0CALL",
        passcode="-1",
        server_filter="t/sm",
        **options,
    )


async def test_gateway_logs_in_feeds_packets_and_skips_comments(fake_server, caplog):
    caplog.set_level(logging.INFO, logger="aprs_news.gateway")
    server = fake_server(
        [BANNER, LOGIN, LOGRESP, BULLETIN + b"\r\n", KEEPALIVE, STATUS + b"\r\n", LATIN1 + b"\r\n"]
    )
    app, stop = Recorder(), asyncio.Event()
    started = time.time()
    running = asyncio.create_task(gateway_for(server, app).run(stop))
    await until(lambda: len(app.packets()) == 3)
    stop.set()
    await asyncio.wait_for(running, 10)

    assert server.logins == [b"user N0CALL pass -1 vers Switchboard 0.1 filter t/sm\r\n"]
    [(scope, events)] = app.runs
    assert scope == {
        "type": "aprs",
        "server": server.address,
        "callsign": "N0CALL",
        "filter": "t/sm",
    }
    assert [e["type"] for e in events] == [
        protocol.EVENT_CONNECT,
        *[protocol.EVENT_PACKET] * 3,
        protocol.EVENT_DISCONNECT,
    ]
    assert app.packets() == [BULLETIN.decode(), STATUS.decode(), LATIN1.decode("latin-1")]
    assert all(started <= e["received"] <= time.time() for e in events if "raw" in e)
    assert "login reply: logresp N0CALL unverified, server T2TEST" in caplog.text


async def test_gateway_reconnects_after_the_server_drops_the_connection(fake_server):
    server = fake_server(
        [LOGIN, LOGRESP, BULLETIN + b"\r\n", CLOSE], [LOGIN, LOGRESP, WEATHER + b"\r\n"]
    )
    app, stop = Recorder(), asyncio.Event()
    running = asyncio.create_task(gateway_for(server, app).run(stop))
    await until(lambda: len(app.packets()) == 2)
    stop.set()
    await asyncio.wait_for(running, 10)
    assert len(server.logins) == 2
    first, second = (events for _, events in app.runs)
    assert [e["type"] for e in first] == ["aprs.connect", "aprs.packet", "aprs.disconnect"]
    assert [e.get("raw") for e in second] == [None, WEATHER.decode(), None]


async def test_silent_connection_is_abandoned_and_reconnected(fake_server):
    server = fake_server([LOGIN], [LOGIN, LOGRESP, STATUS + b"\r\n"])
    app, stop = Recorder(), asyncio.Event()
    gateway = gateway_for(server, app, silence_timeout=0.3)
    running = asyncio.create_task(gateway.run(stop))
    await until(lambda: app.packets() == [STATUS.decode()])
    stop.set()
    await asyncio.wait_for(running, 10)
    assert server.connections == 2
    assert 0 in server.closed_by_client  # the gateway hung up on the silent server


async def test_keepalives_keep_a_quiet_connection_open(fake_server):
    # 2.4 s without a packet, but a keep-alive every 0.15 s: longer than the 2 s silence timeout.
    server = fake_server([LOGIN, LOGRESP, *[0.15, KEEPALIVE] * 16, STATUS + b"\r\n"])
    app, stop = Recorder(), asyncio.Event()
    running = asyncio.create_task(gateway_for(server, app, silence_timeout=2.0).run(stop))
    await until(lambda: len(app.packets()) == 1)
    stop.set()
    await asyncio.wait_for(running, 10)
    assert server.connections == 1


async def test_over_long_and_blank_lines_are_dropped_and_the_feed_goes_on(fake_server):
    server = fake_server([LOGIN, b"X" * 20000 + b"\r\n", b"\r\n", STATUS + b"\r\n"])
    app, stop = Recorder(), asyncio.Event()
    running = asyncio.create_task(gateway_for(server, app).run(stop))
    await until(lambda: len(app.packets()) == 1)
    stop.set()
    await asyncio.wait_for(running, 10)
    assert app.packets() == [STATUS.decode()]
    assert server.connections == 1


async def test_crashed_application_is_restarted_for_the_next_packet(fake_server, caplog):
    server = fake_server([LOGIN, BULLETIN + b"\r\n", STATUS + b"\r\n"])
    app, stop = Recorder(fail_on=BULLETIN.decode()), asyncio.Event()
    running = asyncio.create_task(gateway_for(server, app).run(stop))
    await until(lambda: STATUS.decode() in app.packets())
    stop.set()
    await asyncio.wait_for(running, 10)
    assert len(app.runs) == 2
    assert [e["type"] for e in app.runs[1][1]] == ["aprs.connect", "aprs.packet", "aprs.disconnect"]
    assert "consumer bug" in caplog.text
    assert server.connections == 1


async def test_unreachable_server_is_retried_until_stopped(caplog):
    caplog.set_level(logging.INFO, logger="aprs_news.gateway")
    closed = FakeAPRSIS([])  # bound but never accepting: take its port, then close it
    address = closed.address
    closed.stop()
    app, stop = Recorder(), asyncio.Event()
    gateway = APRSISGateway(app, ServerAddress.parse(address), callsign="N0CALL", backoff=QUICK)
    running = asyncio.create_task(gateway.run(stop))
    await until(lambda: caplog.text.count("reconnecting to APRS-IS") >= 3)
    stop.set()
    await asyncio.wait_for(running, 10)
    assert app.runs == []
    assert "gateway stopped" in caplog.text


def test_login_line_leaves_out_an_empty_filter():
    assert login_line("N0CALL", "-1", "") == b"user N0CALL pass -1 vers Switchboard 0.1\r\n"


@pytest.mark.parametrize(
    ("text", "host", "port"),
    [
        ("rotate.aprs2.net:14580", "rotate.aprs2.net", 14580),
        ("euro.aprs2.net", "euro.aprs2.net", 14580),
        ("[::1]:10152", "::1", 10152),
    ],
)
def test_server_address_parses_host_and_port(text, host, port):
    assert ServerAddress.parse(text) == ServerAddress(host, port)


@pytest.mark.parametrize("text", ["", ":14580", "host:port", "host:70000"])
def test_bad_server_address_is_refused_with_the_value(text):
    with pytest.raises(ValueError, match="host:port"):
        ServerAddress.parse(text)


async def test_replay_feeds_lines_in_order_skipping_comments(tmp_path):
    capture = tmp_path / "capture.aprs"
    capture.write_bytes(
        b"1795435200.00\t# aprsc 2.1.19\n"
        + b"1795435200.50\t" + BULLETIN + b"\n"
        + b"\n"
        + b"1795435201.00\t" + LATIN1 + b"\n"
        + STATUS + b"\n"
    )  # fmt: skip
    app = Recorder()
    sent = await replay(app, capture, stop=asyncio.Event(), speed=100, interval=1)
    assert sent == 3
    assert app.packets() == [BULLETIN.decode(), LATIN1.decode("latin-1"), STATUS.decode()]
    [(scope, events)] = app.runs
    assert scope["server"] == "replay:capture.aprs"
    assert events[-1]["type"] == protocol.EVENT_DISCONNECT


async def test_replay_faster_than_the_application_loses_nothing(tmp_path):
    capture = tmp_path / "burst.aprs"
    lines = [f"K1ABC-{n % 16}>APRS,TCPIP*,qAC,T2X:>status {n}" for n in range(1500)]
    capture.write_text("\n".join(lines) + "\n")
    app = Recorder(pause=0.0005)  # slower than the replay: the gateway's queue fills up
    sent = await replay(app, capture, stop=asyncio.Event(), speed=1, interval=0)
    assert sent == 1500
    assert app.packets() == lines
    [(_, events)] = app.runs
    assert events[-1]["type"] == protocol.EVENT_DISCONNECT


def logged_delays(text: str) -> list[str]:
    return re.findall(r"reconnecting to APRS-IS \S+ in (\S+)s", text)


async def test_back_off_grows_while_connections_deliver_nothing(fake_server, caplog):
    caplog.set_level(logging.INFO, logger="aprs_news.gateway")
    server = fake_server(*[[BANNER, LOGIN, CLOSE]] * 4, [LOGIN, STATUS + b"\r\n", CLOSE], [LOGIN])
    app, stop = Recorder(), asyncio.Event()
    backoff = Backoff(initial=0.05, maximum=0.4, jitter=0.0)
    running = asyncio.create_task(gateway_for(server, app, backoff=backoff).run(stop))
    await until(lambda: server.connections == 6)
    stop.set()
    await asyncio.wait_for(running, 10)
    # four greet-and-hang-up connections: growing waits; one that delivered a packet: reset.
    assert logged_delays(caplog.text) == ["0.10", "0.20", "0.40", "0.40", "0.05"]


async def test_application_crashing_with_a_full_queue_is_restarted_with_the_queued_packets(
    tmp_path,
):
    capture = tmp_path / "burst.aprs"
    lines = [f"K1ABC-{n % 16}>APRS,TCPIP*,qAC,T2X:>status {n}" for n in range(1500)]
    capture.write_text("\n".join(lines) + "\n")
    app = Recorder(fail_on=lines[3], pause=0.0005)
    sent = await asyncio.wait_for(
        replay(app, capture, stop=asyncio.Event(), speed=1, interval=0), 30
    )
    assert sent == 1500
    assert app.packets() == lines  # the poison packet was handed over once, nothing else lost
    assert len(app.runs) == 2


async def test_embedded_replay_does_nothing_without_a_file(settings, tmp_path, caplog):
    app = Recorder()
    settings.APRS_REPLAY_FILE = ""
    await asyncio.wait_for(embedded_replay(app), 5)
    settings.APRS_REPLAY_FILE = str(tmp_path / "missing.aprs")
    await asyncio.wait_for(embedded_replay(app), 5)
    assert app.runs == []
    assert "does not exist" in caplog.text


async def test_embedded_replay_feeds_the_capture_until_cancelled(settings, tmp_path):
    capture = tmp_path / "demo.aprs"
    capture.write_bytes(b"1795435200.00\t" + BULLETIN + b"\n1795435200.05\t" + STATUS + b"\n")
    settings.APRS_REPLAY_FILE = str(capture)
    app = Recorder()
    running = asyncio.create_task(embedded_replay(app))
    await until(lambda: len(app.packets()) == 2)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    [(scope, events)] = app.runs
    assert scope["server"] == "replay:demo.aprs"
    assert events[-1]["type"] == protocol.EVENT_DISCONNECT  # the consumer is told, even on cancel


def test_reconnects_wait_one_second_doubling_to_a_minute_with_a_quarter_jitter():
    first = [RECONNECT_BACKOFF.delay(0) for _ in range(50)]
    assert all(0.75 <= delay <= 1.25 for delay in first) and len(set(first)) > 1
    assert 45 <= RECONNECT_BACKOFF.delay(30) <= 75
