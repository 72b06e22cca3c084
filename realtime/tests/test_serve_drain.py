"""`manage.py serve` drains on SIGTERM, over real sockets (realtime/tests/server_app.py):

it stops accepting at once, closes open WebSockets with 1012 (the application gets
websocket.disconnect, even when it was sending at that moment), lets an HTTP request in flight finish, and exits 0; a request slower than
SWITCHBOARD_SHUTDOWN_GRACE does not hold the process up; a second signal stops it at once."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

SERVER_SETTINGS = {"DJANGO_SETTINGS_MODULE": "realtime.tests.server_settings"}


def start(live_server_factory, **env: str):
    server = live_server_factory()
    server.start_daphne(extra_env={**SERVER_SETTINGS, **env})
    return server


def wait_for_log(server, text: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in (log := server.log()):
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the server log:\n{server.log()}")


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


def fetch_in_background(url: str) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def fetch() -> None:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                result["status"], result["body"] = response.status, response.read()
        except Exception as error:  # the test asserts on what happened
            result["error"] = error

    thread = threading.Thread(target=fetch)
    thread.start()
    return thread, result


def test_sigterm_closes_sockets_with_1012_finishes_requests_and_exits(live_server_factory):
    server = start(live_server_factory, SWITCHBOARD_SHUTDOWN_GRACE="30")
    process, port = server.processes[0], server.port
    origin = f"http://127.0.0.1:{port}"
    with connect(f"{server.ws_url}/ws/echo/", origin=origin, open_timeout=10) as ws:
        ws.send("before")
        assert ws.recv(timeout=10) == "before"
        request, result = fetch_in_background(f"{server.url}/slow/?seconds=1.5")
        wait_for_log(server, "slow request started")
        process.send_signal(signal.SIGTERM)
        with pytest.raises(ConnectionClosed) as closed:
            for _ in range(100):
                ws.recv(timeout=10)
        assert closed.value.rcvd is not None, server.log()
        assert closed.value.rcvd.code == 1012
    deadline = time.monotonic() + 10
    while not refuses_connections(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert refuses_connections(port), "still accepting connections while draining"
    request.join(30)
    assert result.get("status") == 200, result
    assert result["body"] == b"slow done"
    assert process.wait(30) == 0
    log = server.log()
    assert "echo disconnected 1012" in log
    assert "Drained in" in log
    assert "Switchboard stopped" in log


def raw_websocket(port: int, path: str) -> socket.socket:
    """A WebSocket opened by hand, for a client that then reads nothing (so it never answers the
    server's close frame); the `websockets` library always answers."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response and len(response) < 65536:
        response += sock.recv(4096)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def send_text(sock: socket.socket, text: str) -> None:
    """One masked text frame (clients must mask), payload under 126 bytes."""
    payload = text.encode()
    mask = os.urandom(4)
    masked = bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)


def test_an_application_sending_while_its_socket_is_closed_still_hears_the_disconnect(
    live_server_factory,
):
    server = start(live_server_factory, SWITCHBOARD_SHUTDOWN_GRACE="30")
    process = server.processes[0]
    sock = raw_websocket(server.port, "/ws/echo/")
    try:
        # The application sends every millisecond; the client never answers the close frame, so
        # the socket stays "closing" until the server gives up on the close handshake.
        send_text(sock, "stream")
        sock.recv(64)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        sock.close()
    log = server.log()
    assert "Exception inside application" not in log, log
    assert "echo disconnected" in log, log


def test_a_request_slower_than_the_grace_does_not_hold_up_the_shutdown(live_server_factory):
    server = start(live_server_factory, SWITCHBOARD_SHUTDOWN_GRACE="0.5")
    process = server.processes[0]
    request, result = fetch_in_background(f"{server.url}/slow/?seconds=300")
    wait_for_log(server, "slow request started")
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(60)
    except subprocess.TimeoutExpired:
        pytest.fail("serve did not exit after the grace while a request was still running")
    assert code == 0
    request.join(30)
    assert "status" not in result, "the 300-second request cannot have finished"
    assert "Drain grace of 0s over with 1 connections still busy" in server.log()


def test_a_second_signal_stops_at_once(live_server_factory):
    server = start(live_server_factory, SWITCHBOARD_SHUTDOWN_GRACE="300")
    process = server.processes[0]
    request, _ = fetch_in_background(f"{server.url}/slow/?seconds=300")
    wait_for_log(server, "slow request started")
    process.send_signal(signal.SIGTERM)
    wait_for_log(server, "SIGTERM: draining")
    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0
    assert "SIGINT during the drain: stopping now" in server.log()
    request.join(30)
