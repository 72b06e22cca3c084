"""Notifications across real processes: Daphne on a socket, a separate worker process, Redis."""

import json
import re
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest


def get(url: str, cookie: str = "", timeout: float = 10) -> tuple[int, dict | str]:
    request = urllib.request.Request(url, headers={"Cookie": f"sessionid={cookie}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read().decode()
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return response.status, json.loads(body)
        return response.status, body


def polls_waiting(server) -> float:
    _, text = get(f"{server.url}/metrics")
    match = re.search(r'realtime_long_polls_waiting\{route="notifications/poll/"\} (\S+)', text)
    return float(match.group(1)) if match else 0.0


@pytest.fixture(scope="module")
def redis_live_server(live_server_factory, redis_server):
    """Daphne with the Redis layer (no in-process worker) plus `runworker notifications-fanout`."""
    server = live_server_factory(redis_url=redis_server.url, SWITCHBOARD_APRS_REPLAY="")
    server.start_daphne()
    server.start_process("runworker", "notifications-fanout", name="worker")
    return server


def test_waiting_long_poll_is_answered_by_a_notification_the_worker_creates(redis_live_server):
    server = redis_live_server
    cookie = server.create_user("ann")
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            get, f"{server.url}/notifications/poll/?after=0&timeout=30", cookie, 10
        )
        deadline = time.monotonic() + 10
        while polls_waiting(server) < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert polls_waiting(server) >= 1, server.log()
        assert not pending.done()
        # Another process queues the announcement; the worker process creates the notifications
        # and pushes through Redis to the Daphne process holding the poll.
        server.shell(
            "from notifications import notify_all\n"
            "notify_all(verb='announcement', text='Maintenance tonight', url='/news/')"
        )
        status, body = pending.result(timeout=15)
        answered = datetime.now(UTC)
    assert status == 200, body
    [notification] = body["notifications"]
    assert notification["text"] == "Maintenance tonight"
    assert notification["verb"] == "announcement"
    assert body["cursor"] == notification["id"]
    # For the record (not asserted: timings flake): creation in the worker to answer over Daphne.
    latency = answered - datetime.fromisoformat(notification["created"])
    print(f"long-poll answered {latency.total_seconds() * 1000:.0f} ms after the worker created it")


def test_console_announcement_reaches_a_waiting_poll_through_the_in_process_worker(live_server):
    """`manage.py serve` with the in-memory layer runs the fan-out worker inside the web process:
    a staff announcement from the console socket answers another user's waiting long-poll."""
    from websockets.sync.client import connect

    cookies = [
        live_server.create_sessions(["herald"], staff=True)["herald"],
        live_server.create_sessions(["listener"])["listener"],
    ]
    herald, listener = cookies
    _, latest = get(f"{live_server.url}/api/notifications/?limit=1", listener)
    after = latest["notifications"][0]["id"] if latest["notifications"] else 0
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(
            get, f"{live_server.url}/notifications/poll/?after={after}&timeout=30", listener, 10
        )
        with connect(
            f"{live_server.ws_url}/ws/chat/admin/",
            origin=live_server.url,
            additional_headers={"Cookie": f"sessionid={herald}"},
            open_timeout=10,
        ) as console:
            console.send(json.dumps({"type": "announce", "text": "Fire drill at three"}))
            status, body = pending.result(timeout=15)
    assert status == 200, body
    assert [(n["verb"], n["text"]) for n in body["notifications"]] == [
        ("announcement", "Fire drill at three")
    ]
