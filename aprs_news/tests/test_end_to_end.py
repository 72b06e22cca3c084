"""End to end: a fake APRS-IS server, the real `manage.py aprs_gateway` process, Daphne, Redis.

The gateway and Daphne are separate processes, so they share a Redis-backed channel layer and one
database. A browser-like WebSocket client on ws/news/ sees what the fake server sends, across a
dropped connection and the gateway's reconnect.
"""

import json
import signal
import subprocess
import time

from websockets.sync.client import connect

from aprs_news import protocol
from aprs_news.tests.conftest import sample_packet
from aprs_news.tests.fake_aprsis import CLOSE, LOGIN, FakeAPRSIS

BANNER = b"# aprsc 2.1.19-g730c5c0\r\n"
LOGRESP = b"# logresp N0TEST unverified, server T2TEST\r\n"
KEEPALIVE = b"# aprsc 2.1.19-g730c5c0 23 Nov 2026 12:00:23 GMT T2TEST 127.0.0.1:14580\r\n"
BULLETIN = sample_packet("VE3QRP-5>APRS,WIDE2-1,qAR,VE3GTA::BLN3CLUB")
BULLETIN_BY_RADIO = sample_packet("VE3QRP-5>APRS,VE3RPT*,WIDE2,qAR,VE3KTW-10::BLN3CLUB")
STATUS = sample_packet("JA1XQZ>APRS,TCPIP*,qAC,T2TOKYO:>")
WEATHER = sample_packet("CW4412>")
POSITION = sample_packet("N5QZX-9>APAT51,WIDE1-1,WIDE2-1,qAR,KD5ABC-10:!")


def line(text: str) -> bytes:
    return text.encode() + b"\r\n"


def frames(socket, count: int, timeout: float = 20.0) -> list[dict]:
    received = []
    deadline = time.monotonic() + timeout
    while len(received) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only got {received}"
        received.append(json.loads(socket.recv(timeout=remaining)))
    return received


def test_gateway_feeds_the_news_socket_across_a_dropped_connection(news_server):
    fake = FakeAPRSIS(
        [
            [
                BANNER,
                LOGIN,
                LOGRESP,
                KEEPALIVE,
                line(BULLETIN),
                b"\xff\xfe this is garbage\r\n",
                line(POSITION),
                line(STATUS),
                CLOSE,
            ],
            [BANNER, LOGIN, LOGRESP, line(WEATHER), line(BULLETIN_BY_RADIO)],
        ]
    ).start()
    origin = news_server.url
    with connect(f"{news_server.ws_url}/ws/news/", origin=origin) as socket:
        [recent] = frames(socket, 1)
        assert recent == {"type": protocol.FRAME_RECENT, "items": []}
        gateway = news_server.start_process(
            "aprs_gateway",
            "--server",
            fake.address,
            "--callsign",
            "N0TEST",
            "--filter",
            "b/VE3* t/s",
            name="gateway",
        )
        try:
            bulletin, status, weather, seen = frames(socket, 4)
            fake.wait_for(lambda: len(fake.logins) == 2)
        finally:
            gateway.send_signal(signal.SIGTERM)
            try:
                returncode = gateway.wait(15)
            except subprocess.TimeoutExpired:
                gateway.kill()
                raise
            fake.stop()

    assert fake.logins == [b"user N0TEST pass -1 vers Switchboard 0.1 filter b/VE3* t/s\r\n"] * 2
    assert bulletin["type"] == protocol.FRAME_ITEM
    assert bulletin["item"]["addressee"] == "BLN3CLUB"
    assert bulletin["item"]["raw"] == BULLETIN
    assert status["item"]["text"] == "QRV 430.90 FM, listening"
    assert weather["item"]["kind"] == "weather"  # arrived over the second connection
    assert seen == {
        "type": protocol.FRAME_SEEN,
        "id": bulletin["item"]["id"],
        "seen_count": 2,
        "last_seen": seen["last_seen"],
    }
    assert returncode == 0
    log = news_server.log()
    assert "login reply: logresp N0TEST unverified" in log
    assert "APRS-IS gateway stopped" in log
