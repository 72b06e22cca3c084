"""The shipped deploy/nginx.conf, run for real: Debian's nginx (installed by
scripts/install-system-deps.sh) on the project's own config, with only its ports, upstreams and
file paths rewritten, terminating TLS with a certificate made here, in front of two Switchboard web
processes (`manage.py serve --proxy-headers`) on one Redis.

Through nginx, as a browser would: pages, login with CSRF, the JSON API, a long-poll woken by a
mention, `wss` chat between sockets that nginx put on different processes, the health endpoints,
the HTTP-to-HTTPS redirect, and a client that cannot choose its own X-Forwarded-For."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import http.client
import ipaddress
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import websockets

from chat import protocol as chat_protocol
from tests.chat_client import create_room
from tests.servers import LiveServer, RedisServer, free_port, stop_process, wait_for, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
NGINX_CONF = ROOT / "deploy" / "nginx.conf"
PASSWORD = "proxy-pass-word-123"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None
    )
    if found is None:
        pytest.fail("nginx is not installed: run scripts/install-system-deps.sh (make test does)")
    return found


def make_certificate(directory: Path) -> Path:
    """A self-signed certificate for 127.0.0.1 and localhost; returns the certificate path (the
    key is privkey.pem beside it, the names the shipped config expects)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "switchboard test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (directory / "privkey.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path = directory / "fullchain.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return path


def substitute(
    text: str, pattern: str, replacement: str | Callable[[re.Match[str]], str], count: int
) -> str:
    """re.sub that insists the shipped config still has what the test rewrites."""
    result, found = re.subn(pattern, replacement, text)
    assert found == count, f"expected {count} match(es) of {pattern!r} in nginx.conf, got {found}"
    return result


def proxied_config(
    directory: Path, http_port: int, https_port: int, upstream_ports: list[int]
) -> str:
    """deploy/nginx.conf with only listen ports, upstream servers and file paths changed."""
    text = NGINX_CONF.read_text()
    text = substitute(text, r"listen 80;", f"listen 127.0.0.1:{http_port};", 1)
    text = substitute(text, r"listen 443 ", f"listen 127.0.0.1:{https_port} ", 1)
    # What Docker's DNS does for Compose's scaled `web` service: one address per replica.
    text = substitute(
        text,
        r"(?m)^( +)server web:8000 ([^;\n]*);",
        lambda found: "\n".join(
            f"{found.group(1)}server 127.0.0.1:{port} {found.group(2)};" for port in upstream_ports
        ),
        1,
    )
    text = substitute(text, r"/etc/nginx/certs/", f"{directory}/", 2)
    # Where nginx writes: its PID file, logs and temporary files, all in the test's directory.
    text = f"pid {directory}/nginx.pid;\nerror_log {directory}/error.log info;\n" + text
    paths = "\n".join(
        f"    {name}_temp_path {directory}/{name}_temp;"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return substitute(
        text,
        r"http \{\n",
        f"http {{\n    access_log {directory}/access.log;\n{paths}\n",
        1,
    )


@dataclass
class Proxy:
    """nginx on the shipped config in front of a LiveServer's web processes."""

    server: LiveServer
    directory: Path
    http_port: int = field(default_factory=free_port)
    https_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    context: ssl.SSLContext | None = None

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def start(self) -> None:
        # Running as root, nginx's workers drop to `nobody` and must reach the temp directories.
        self.directory.chmod(0o755)
        certificate = make_certificate(self.directory)
        self.context = ssl.create_default_context(cafile=str(certificate))
        self.write_config(self.server.ports)
        self.process = subprocess.Popen(
            [*self.command(), "-g", "daemon off;"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.https_port, process=self.process)
        wait_for_port(self.http_port, process=self.process)

    def command(self) -> list[str]:
        config = self.directory / "nginx.conf"
        return [nginx_binary(), "-c", str(config), "-e", str(self.directory / "error.log")]

    def write_config(self, upstream_ports: list[int]) -> None:
        """The shipped config for these web processes, checked with `nginx -t`."""
        (self.directory / "nginx.conf").write_text(
            proxied_config(self.directory, self.http_port, self.https_port, upstream_ports)
        )
        checked = subprocess.run(
            [*self.command(), "-t"], capture_output=True, text=True, timeout=30
        )
        assert checked.returncode == 0, f"nginx refuses the shipped config:\n{checked.stderr}"

    def reload(self, upstream_ports: list[int]) -> None:
        """What `docker compose exec nginx nginx -s reload` does after scaling: the new set of
        web processes, read by new nginx workers (the old ones finish their open connections)."""
        assert self.process is not None
        self.write_config(upstream_ports)
        reloads = self.error_log().count("reconfiguring")
        self.process.send_signal(signal.SIGHUP)
        wait_for(
            lambda: (
                self.error_log().count("reconfiguring") > reloads
                and "start worker process" in self.error_log().rpartition("reconfiguring")[2]
            ),
            message="nginx reloaded its configuration",
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def error_log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text() if path.exists() else ""


class Browser:
    """What a browser does over HTTPS that these tests need: cookies, Origin and Referer on
    unsafe requests, no automatic redirects."""

    def __init__(self, proxy: Proxy) -> None:
        self.proxy = proxy
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30,
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.proxy.https_port, context=self.proxy.context, timeout=timeout
        )
        sent = {"Accept": "text/html,application/json"}
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if method not in {"GET", "HEAD"}:
            sent["Origin"] = self.proxy.origin
            sent["Referer"] = self.proxy.origin + "/"
        sent.update(headers or {})
        try:
            connection.request(method, path, body=body, headers=sent)
            response = connection.getresponse()
            data = response.read()
            for header, value in response.getheaders():
                if header.lower() == "set-cookie":
                    cookie_name, _, rest = value.partition("=")
                    self.cookies[cookie_name.strip()] = rest.split(";", 1)[0]
            return response.status, {k.lower(): v for k, v in response.getheaders()}, data
        finally:
            connection.close()

    def get(self, path: str, **kwargs) -> tuple[int, dict[str, str], bytes]:
        return self.request("GET", path, **kwargs)

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return self.request(
            "POST",
            path,
            body=urllib.parse.urlencode(fields).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    def login(self, username: str) -> None:
        status, _, page = self.get("/accounts/login/")
        assert status == 200, page[:500]
        token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
        assert token, "no CSRF token in the login form"
        status, headers, page = self.post_form(
            "/accounts/login/",
            {
                "login": username,
                "password": PASSWORD,
                "csrfmiddlewaretoken": token.group(1).decode(),
            },
        )
        assert status == 302, f"login answered {status}: {page[:800]!r}"
        assert headers["location"] == "/"
        assert "sessionid" in self.cookies


def daphne_metric(port: int, route_fragment: str) -> float:
    """realtime_open_connections of one web process for the WebSocket route containing
    `route_fragment`, read from that process directly."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics", headers={"Host": "127.0.0.1"})
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    total = 0.0
    for line in text.splitlines():
        if (
            line.startswith("realtime_open_connections{")
            and route_fragment in line
            and 'type="websocket"' in line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total


def long_polls_waiting(port: int) -> float:
    """realtime_long_polls_waiting of one web process for the notifications poll route."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/metrics", headers={"Host": "127.0.0.1"})
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    found = re.search(r'realtime_long_polls_waiting\{route="notifications/poll/"\} (\S+)', text)
    return float(found.group(1)) if found else 0.0


@contextlib.contextmanager
def nginx_in_front(
    live_server_factory: Callable[..., LiveServer],
    processes: int,
    daphne_args: tuple[str, ...] = ("--proxy-headers",),
    **env: str,
) -> Iterator[Proxy]:
    """nginx on the shipped config in front of `processes` Daphne processes sharing a private
    Redis; everything started is stopped afterwards."""
    redis = RedisServer()
    redis.start()
    server = live_server_factory(redis_url=redis.url, SWITCHBOARD_APRS_REPLAY="", **env)
    for _ in range(processes):
        server.start_daphne(args=daphne_args)
    directory = Path(tempfile.mkdtemp(prefix="sb-nginx-"))
    proxy = Proxy(server=server, directory=directory)
    try:
        proxy.start()
        yield proxy
    finally:
        proxy.stop()
        server.stop()
        redis.cleanup()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def proxy(live_server_factory) -> Iterator[Proxy]:
    with nginx_in_front(
        live_server_factory,
        2,
        daphne_args=("--proxy-headers", "--verbosity", "2"),
        # Production's HTTPS behaviour: secure cookies and a redirect of anything that did not
        # arrive over HTTPS, which only works when the proxy's X-Forwarded-Proto reaches Django.
        DJANGO_SECURE_COOKIES="1",
        DJANGO_SECURE_SSL_REDIRECT="1",
    ) as started:
        yield started


def test_nginx_accepts_the_shipped_config_and_redirects_plain_http(proxy):
    connection = http.client.HTTPConnection("127.0.0.1", proxy.http_port, timeout=10)
    connection.request("GET", "/rooms/lobby/?x=1")
    response = connection.getresponse()
    assert response.status == 301
    assert response.getheader("Location") == "https://127.0.0.1/rooms/lobby/?x=1"
    connection.close()


def test_pages_login_with_csrf_and_json_api_through_nginx(proxy):
    proxy.server.create_user("proxy-ann", password=PASSWORD)
    browser = Browser(proxy)
    status, _, page = browser.get("/")
    assert status == 200, page[:800]
    browser.login("proxy-ann")
    status, _, page = browser.get("/notifications/")
    assert status == 200, page[:800]
    assert b"proxy-ann" in page
    status, headers, body = browser.get("/api/notifications/")
    assert status == 200, body[:800]
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["unread"] == 0
    # A session-authenticated API write passes CSRF through the proxy with the token header...
    status, _, body = browser.request(
        "POST",
        "/api/notifications/read/",
        body=b'{"all": true}',
        headers={"Content-Type": "application/json", "X-CSRFToken": browser.cookies["csrftoken"]},
    )
    assert status == 200, body[:800]
    assert json.loads(body) == {"unread": 0}
    # ...and is refused without it.
    status, _, _ = browser.request(
        "POST",
        "/api/notifications/read/",
        body=b'{"all": true}',
        headers={"Content-Type": "application/json"},
    )
    assert status == 403


def test_health_endpoints_through_nginx(proxy):
    browser = Browser(proxy)
    for path in ("/healthz", "/readyz"):
        status, _, body = browser.get(path)
        assert status == 200, (path, body[:500])
    assert json.loads(browser.get("/readyz")[2])["status"] == "ready"
    # Asked from 127.0.0.1, which the shipped config lets scrape.
    status, _, body = browser.get("/metrics")
    assert status == 200
    assert b"realtime_open_connections" in body


def test_client_cannot_choose_its_own_forwarded_address(proxy):
    browser = Browser(proxy)
    status, _, _ = browser.get(
        "/healthz?forwarded-probe", headers={"X-Forwarded-For": "203.0.113.77"}
    )
    assert status == 200
    wait_for(
        lambda: re.search(r"GET /healthz 200 \[[\d.]+, 127\.0\.0\.1:", proxy.server.log()),
        message="the access log line of the probe",
    )
    assert "203.0.113.77" not in proxy.server.log()


def test_wss_chat_across_two_processes_and_a_long_poll_woken_by_a_mention(proxy):
    server = proxy.server
    create_room(server, "proxied")
    server.create_user("proxy-bob", password=PASSWORD)
    server.create_user("proxy-cid", password=PASSWORD)
    browsers = {name: Browser(proxy) for name in ("proxy-bob", "proxy-cid")}
    for name, browser in browsers.items():
        browser.login(name)
    url = f"wss://127.0.0.1:{proxy.https_port}/ws/chat/proxied/"

    def connect(name: str):
        cookie = "; ".join(f"{k}={v}" for k, v in browsers[name].cookies.items())
        return websockets.connect(
            url,
            ssl=proxy.context,
            origin=proxy.origin,
            additional_headers={"Cookie": cookie},
            open_timeout=10,
        )

    poll_result: dict = {}

    def long_poll() -> None:
        poll_result["answer"] = browsers["proxy-bob"].get(
            "/notifications/poll/?after=0&timeout=30", timeout=40
        )

    async def frame_of_type(socket, kind: str) -> dict:
        while True:
            frame = json.loads(await asyncio.wait_for(socket.recv(), 15))
            if frame.get("type") == kind:
                return frame

    def counts() -> list[float]:
        return [daphne_metric(port, "ws/chat/") for port in server.ports]

    async def socket_on_another_process(before: list[float]):
        """cid's socket, on the process that does not hold bob's: nginx (least_conn) sends it
        there unless a socket of an earlier test is still closing, so a few tries, bounded."""
        for _ in range(5):
            socket = await connect("proxy-cid")
            await frame_of_type(socket, chat_protocol.HISTORY)
            now = counts()
            if all(a - b == 1 for a, b in zip(now, before, strict=True)):
                return socket
            await socket.close()
            # Only bob's socket is left before the next try.
            await asyncio.to_thread(
                wait_for, lambda: sum(counts()) == sum(before) + 1, message="the retry closed"
            )
        raise AssertionError(f"nginx never used the second process: {counts()}")

    async def scenario() -> dict:
        before = counts()
        async with connect("proxy-bob") as bob:
            await frame_of_type(bob, chat_protocol.HISTORY)
            cid = await socket_on_another_process(before)
            poller = threading.Thread(target=long_poll)
            poller.start()
            # The poll is held open (through nginx) until something happens.
            await asyncio.to_thread(
                wait_for,
                lambda: sum(long_polls_waiting(port) for port in server.ports) == 1,
                message="one long-poll waiting",
            )
            await cid.send(
                json.dumps(
                    {
                        "type": chat_protocol.MESSAGE,
                        "text": "over TLS @proxy-bob",
                        "client_id": "c1",
                    }
                )
            )
            heard = await frame_of_type(bob, chat_protocol.MESSAGE)
            await asyncio.to_thread(poller.join, 40)
            await cid.close()
            return heard

    heard = asyncio.run(scenario())
    assert heard["text"] == "over TLS @proxy-bob"
    assert heard["user"] == "proxy-cid"
    status, _, body = poll_result["answer"]
    assert status == 200, body[:500]
    notifications = json.loads(body)["notifications"]
    assert [n["verb"] for n in notifications] == ["mention"], notifications
    assert "over TLS" in notifications[0]["text"]


REPLICAS = 3


@pytest.fixture
def scaled(live_server_factory) -> Iterator[Proxy]:
    """nginx in front of three web processes: Compose's `web` service with three replicas."""
    with nginx_in_front(live_server_factory, REPLICAS) as started:
        yield started


def test_nginx_balances_over_every_replica_and_follows_scaling_up_and_down(scaled):
    """The Compose story (docs/deployment.md): sockets spread evenly over the replicas; a replica
    added and nginx reloaded gets sockets; a replica stopped drains (its sockets are told 1012)
    while nginx skips it, then nginx is reloaded without it; no client is ever refused."""
    proxy = scaled
    server = proxy.server
    url = f"wss://127.0.0.1:{proxy.https_port}/ws/news/"

    async def open_news():
        socket = await websockets.connect(
            url, ssl=proxy.context, origin=proxy.origin, open_timeout=10
        )
        await asyncio.wait_for(socket.recv(), 10)  # the recent news: the consumer runs
        return socket

    def news_sockets(ports: list[int]) -> list[float]:
        return [daphne_metric(port, "ws/news/") for port in ports]

    async def scenario() -> dict:
        seen: dict = {}
        sockets = [await open_news() for _ in range(3 * REPLICAS)]
        seen["spread"] = news_sockets(server.ports)

        # Scale up: one more replica, then nginx reloaded with it.
        new_port = await asyncio.to_thread(server.start_daphne, None, ("--proxy-headers",))
        await asyncio.to_thread(proxy.reload, list(server.ports))
        for _ in range(4 * (REPLICAS + 1)):
            sockets.append(await open_news())
            if daphne_metric(new_port, "ws/news/"):
                break
        seen["on_new_replica"] = daphne_metric(new_port, "ws/news/")

        # Scale down: the first replica is stopped (SIGTERM, as Compose stops a container); its
        # sockets are told to reconnect; nginx has not been reloaded yet.
        stopped, first = server.ports[0], server.processes[0]
        held = daphne_metric(stopped, "ws/news/")
        first.send_signal(signal.SIGTERM)
        seen["exit_code"] = await asyncio.to_thread(first.wait, 30)
        seen["held"] = held
        deadline = asyncio.get_running_loop().time() + 15
        while sum(s.close_code == 1012 for s in sockets) < held:
            assert asyncio.get_running_loop().time() < deadline, [s.close_code for s in sockets]
            await asyncio.sleep(0.05)
        seen["told_1012"] = sum(s.close_code == 1012 for s in sockets)
        live = [s for s in sockets if s.close_code is None]
        live += [await open_news() for _ in range(2 * REPLICAS)]  # nginx skips the stopped one
        remaining = server.ports[1:]
        await asyncio.to_thread(proxy.reload, remaining)
        live += [await open_news() for _ in range(REPLICAS)]
        seen["open"] = len(live)
        seen["on_remaining"] = news_sockets(remaining)
        for socket in [*sockets, *live]:
            await socket.close()
        return seen

    seen = asyncio.run(scenario())
    assert seen["spread"] == [3.0] * REPLICAS, seen
    assert seen["on_new_replica"] >= 1, seen
    assert seen["exit_code"] == 0
    assert seen["held"] >= 1 and seen["told_1012"] == seen["held"], seen
    assert sum(seen["on_remaining"]) == seen["open"], seen
