"""/metrics of the real application over a real socket: Django traffic is labelled by the Django
URL pattern it resolves to (never route=""), and the scrape itself is not a waiting long-poll."""

from __future__ import annotations

import re
import urllib.error
import urllib.request


def get(server, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{server.url}{path}", timeout=20) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text: str, name: str) -> dict[str, float]:
    """{label set: value} of one metric family in a Prometheus text exposition."""
    found = {}
    for line in text.splitlines():
        match = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if match:
            found[match.group(1)] = float(match.group(2))
    return found


def test_django_requests_are_labelled_by_their_url_pattern(live_server):
    assert get(live_server, "/")[0] == 200
    get(live_server, "/rooms/metrics-room-a/")
    get(live_server, "/rooms/metrics-room-b/")
    assert get(live_server, "/healthz")[0] == 200
    assert get(live_server, "/no/such/page/")[0] == 404
    status, text = get(live_server, "/metrics")
    assert status == 200
    totals = samples(text, "realtime_connections_total")
    assert totals.get('route="rooms/<str:slug>/",type="http"', 0) >= 2, totals
    assert totals.get('route="/",type="http"', 0) >= 1, totals
    assert totals.get('route="healthz",type="http"', 0) >= 1, totals
    assert totals.get('route="unmatched",type="http"', 0) >= 1, totals
    assert not any('route=""' in labels for labels in totals), totals
    assert not any("metrics-room" in labels for labels in totals), "a path became a label"


def test_a_scrape_does_not_count_itself_as_a_waiting_long_poll(live_server):
    get(live_server, "/metrics")
    _, text = get(live_server, "/metrics")
    waiting = samples(text, "realtime_long_polls_waiting")
    assert all(value == 0 for value in waiting.values()), waiting
    assert set(waiting) <= {'route="notifications/poll/"'}, waiting
