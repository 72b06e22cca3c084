"""The server log of a real Daphne: every record is written once, in the one timestamped format."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid


def test_a_warning_is_logged_once_with_its_timestamp(live_server):
    path = f"/missing-{uuid.uuid4().hex}/"
    try:
        urllib.request.urlopen(live_server.url + path, timeout=10)
    except urllib.error.HTTPError as error:
        assert error.code == 404
    deadline = time.monotonic() + 10
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = [line for line in live_server.log().splitlines() if path in line]
        if any("WARNING django.request" in line for line in lines):
            break
        time.sleep(0.1)
    assert len(lines) == 1, lines
    assert "WARNING django.request: Not Found: " + path in lines[0]
