"""`manage.py serve` over real sockets: Daphne, the in-process worker and an embedded service in
one process, serving the tiny application in realtime/tests/server_app.py (so the core is tested
without the project's apps). Clients are the `websockets` library and urllib."""

from __future__ import annotations

import signal
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.servers import PYTHON, ROOT, free_port, stop_process, wait_for_port

SERVER_SETTINGS = {"DJANGO_SETTINGS_MODULE": "realtime.tests.server_settings"}


@pytest.fixture(scope="module")
def server(live_server_factory):
    server = live_server_factory()
    server.start_daphne(extra_env=SERVER_SETTINGS)
    yield server
    server.stop()


def wait_for_log(server, text: str, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = server.log()
        if text in log:
            return log
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the server log:\n{server.log()}")


def origin(server) -> str:
    return f"http://127.0.0.1:{server.port}"


def test_serve_prints_the_url_it_serves_on(server):
    wait_for_log(server, f"Switchboard serving on http://127.0.0.1:{server.port}/")


def test_websocket_echoes_over_a_real_socket(server):
    with connect(f"{server.ws_url}/ws/echo/", origin=origin(server), open_timeout=10) as ws:
        ws.send("hello, switchboard")
        assert ws.recv(timeout=10) == "hello, switchboard"


def test_cross_origin_websocket_handshake_is_refused_with_403(server):
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{server.ws_url}/ws/echo/", origin="http://evil.example", open_timeout=10)
    assert refused.value.response.status_code == 403


def test_websocket_to_an_unknown_path_is_refused_at_the_handshake(server):
    with pytest.raises(InvalidStatus) as refused:
        connect(f"{server.ws_url}/ws/nowhere/", origin=origin(server), open_timeout=10)
    assert refused.value.response.status_code == 403


def test_http_request_to_an_unknown_path_gets_404(server):
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{server.url}/nowhere/", timeout=10)
    assert missing.value.code == 404


def test_an_application_error_still_answers_500(server):
    with pytest.raises(urllib.error.HTTPError) as failed:
        urllib.request.urlopen(f"{server.url}/broken/", timeout=10)
    assert failed.value.code == 500
    wait_for_log(server, "a bug in a view, not a missing route")


def test_http_requests_are_served(server):
    with urllib.request.urlopen(f"{server.url}/hello/", timeout=10) as response:
        assert response.status == 200
        assert response.read() == b"hello"


def test_static_files_are_served_without_collectstatic(server):
    with urllib.request.urlopen(f"{server.url}/static/admin/css/base.css", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/css")
        assert b"body" in response.read()


def test_in_process_worker_serves_the_channel_routes(server):
    with connect(f"{server.ws_url}/ws/echo/", origin=origin(server), open_timeout=10) as ws:
        ws.send("work")
        assert ws.recv(timeout=10) == "job done"


def test_embedded_services_run_in_the_server_process(server):
    with connect(f"{server.ws_url}/ws/echo/", origin=origin(server), open_timeout=10) as ws:
        ws.send("service?")
        assert ws.recv(timeout=10) == "service running"


def test_sigterm_stops_the_server_cleanly_cancelling_services_and_the_worker(server):
    server.start_daphne(extra_env=SERVER_SETTINGS)
    process, port = server.processes.pop(), server.ports.pop()
    with connect(f"ws://127.0.0.1:{port}/ws/echo/", origin=origin(server), open_timeout=10) as ws:
        ws.send("service?")
        assert ws.recv(timeout=10) == "service running"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=20) == 0
    log = (server.directory / f"daphne-{port}.log").read_text()
    assert "heartbeat service cancelled" in log
    assert "Worker stopped" in log
    assert "Switchboard stopped" in log


def test_verbosity_2_writes_an_access_log_to_stdout(server):
    port = free_port()
    process = subprocess.Popen(
        [
            *[PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            *["--no-services", "--no-worker", "--verbosity", "2"],
        ],
        cwd=ROOT,
        env={**server.env, **SERVER_SETTINGS},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        wait_for_port(port, timeout=30, process=process)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/hello/", timeout=10) as response:
            assert response.read() == b"hello"
    finally:
        stop_process(process)
    output = process.stdout.read()
    assert "HTTP GET /hello/ 200" in output
    assert "In-process worker" not in output


def test_an_embedded_service_that_does_not_import_stops_serve_at_start(server):
    result = subprocess.run(
        [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=ROOT,
        env={
            **server.env,
            **SERVER_SETTINGS,
            "SERVER_TEST_SERVICES": "realtime.tests.server_app.no_such_service",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "Cannot import the embedded service 'realtime.tests.server_app.no_such_service'" in (
        result.stderr
    )


def test_serve_exits_with_an_error_when_the_port_is_taken(server):
    result = subprocess.run(
        [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(server.port)],
        cwd=ROOT,
        env={**server.env, **SERVER_SETTINGS},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert f"Could not listen on tcp:port={server.port}:interface=127.0.0.1" in result.stderr
