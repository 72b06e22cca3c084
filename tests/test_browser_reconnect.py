"""The browser's reconnecting socket (static/js/socket.js) during a restart, in Chromium, through
the shipped nginx in front of two web processes: when the process holding the socket drains
(SIGTERM), the socket is closed with 1012 and reconnects at once (no back-off wait) through nginx
to the other process, where it works."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from chat import protocol as chat_protocol
from tests.chat_client import create_room
from tests.servers import wait_for
from tests.test_nginx_proxy import Proxy, daphne_metric, nginx_in_front

ROOM = "restarting"

#: Runs in the page: a ReconnectingSocket on the room, recording every state change.
OPEN_SOCKET = """
async (room) => {
  const { ReconnectingSocket, wsUrl } = await import("/static/js/socket.js");
  window.states = [];
  window.frames = [];
  window.chatSocket = new ReconnectingSocket(() => wsUrl(`/ws/chat/${room}/`), {
    onStateChange: (state, detail) => window.states.push({ state, ...detail }),
    onMessage: (frame) => window.frames.push(frame),
  });
}
"""


def wait_in_page(page, expression: str, timeout: float = 15.0) -> None:
    """Wait until `expression` is true in the page. Playwright's wait_for_function evaluates its
    predicate with eval(), which the site's Content-Security-Policy (script-src 'self') blocks;
    page.evaluate goes through the debugger and is not subject to it."""
    wait_for(lambda: page.evaluate(expression), timeout=timeout, message=expression)


@pytest.fixture(scope="module")
def proxied(live_server_factory) -> Iterator[Proxy]:
    with nginx_in_front(live_server_factory, 2) as started:
        yield started


def test_a_draining_process_sends_the_browser_straight_to_the_other_one(proxied, browser):
    server = proxied.server
    create_room(server, ROOM)
    session = server.create_user("restart-ann")
    context = browser.new_context(ignore_https_errors=True)
    context.add_cookies([{"name": "sessionid", "value": session, "url": proxied.origin}])
    page = context.new_page()
    try:
        page.goto(f"{proxied.origin}/healthz")
        page.evaluate(OPEN_SOCKET, ROOM)
        wait_in_page(page, "window.states.some((s) => s.state === 'open')")
        counts = [daphne_metric(port, "ws/chat/") for port in server.ports]
        assert sorted(counts) == [0, 1], counts
        holder = counts.index(1)
        server.processes[holder].send_signal(signal.SIGTERM)
        assert server.processes[holder].wait(30) == 0
        # Open again, on the other process.
        wait_in_page(page, "window.states.filter((s) => s.state === 'open').length === 2")
        other = server.ports[1 - holder]
        wait_for(lambda: daphne_metric(other, "ws/chat/") == 1, message="socket on the other")
        states = page.evaluate("window.states")
        reconnecting = [s for s in states if s["state"] == "reconnecting"]
        assert len(reconnecting) == 1, states
        assert reconnecting[0]["code"] == 1012
        # The wait after 1012 is the restart jitter (under 250 ms), not the back-off, whose
        # first wait is at least 250 ms (minDelay 500 ms, halved by the jitter).
        assert reconnecting[0]["delay"] < 250, reconnecting[0]
        # The socket works on the new process.
        page.evaluate(
            "window.chatSocket.send({type: 'message', text: 'still here', client_id: 'r1'})"
        )
        wait_in_page(
            page,
            f"window.frames.some((f) => f.type === '{chat_protocol.MESSAGE}' "
            "&& f.text === 'still here')",
        )
    finally:
        context.close()
