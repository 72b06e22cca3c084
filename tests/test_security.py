"""Security, checked the way an attacker would try it:

- a WebSocket handshake from another origin is refused by real Daphne, and with strict origins
  from the site's own host on another scheme or port;
- the staff console refuses anonymous (4401) and non-staff (4403) users, notification streams and
  the long-poll feed refuse anonymous ones;
- every state-changing HTTP endpoint in the URLconf refuses a logged-in POST without a CSRF token;
- with production settings the session and CSRF cookies are Secure (and the session HttpOnly);
- chat message text is never rendered as HTML, in the live view or in the page's history;
- the long-poll endpoint refuses a foreign Host, other methods and large bodies at once (a 40 MB
  body is never read), and answers with Django's security headers;
- /readyz tells the public which check fails, never why;
- one user holds at most 20 sockets (close 4429) and 5 waiting polls (429) per process;
- password guessing: the admin login has the site login's limits, shared by processes via Redis;
- every page runs under the Content-Security-Policy without a violation or a script error.

docs/security.md has the table of attacks, expected answers and tests.
"""

from __future__ import annotations

import asyncio
import http.cookiejar
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import websockets
import websockets.exceptions
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern

from chat import protocol as chat_protocol
from conftest import watch_pages
from notifications import protocol as notification_protocol
from tests.chat_client import ChatClient, create_room, create_sessions
from tests.servers import ROOT, free_port

EVIL_ORIGIN = "http://evil.example"
MARKUP = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script><b>bold</b>'


@pytest.fixture(scope="module")
def sessions(live_server) -> dict[str, str]:
    keys = create_sessions(live_server, ["sec-member"])
    keys.update(create_sessions(live_server, ["sec-staff"], staff=True))
    create_room(live_server, "security")
    return keys


async def handshake(url: str, origin: str, session: str | None = None):
    headers = {"Cookie": f"sessionid={session}"} if session else {}
    return await websockets.connect(url, origin=origin, additional_headers=headers, open_timeout=5)


async def close_code_after_connect(url: str, origin: str, session: str | None) -> int | None:
    """Connect and return the close code the server ends the socket with (None: stays open)."""
    async with await handshake(url, origin, session) as socket:
        try:
            while True:
                await asyncio.wait_for(socket.recv(), 2)
        except websockets.exceptions.ConnectionClosed:
            return socket.close_code
        except TimeoutError:
            return None


# -- WebSocket origin and authorisation ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/chat/security/", "/ws/notifications/", "/ws/chat/admin/"])
def test_cross_origin_websocket_handshake_is_refused(live_server, sessions, path):
    url = live_server.ws_url + path

    async def attempt():
        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            await handshake(url, EVIL_ORIGIN, sessions["sec-staff"])
        assert refused.value.response.status_code == 403
        # The same request from the site's own origin gets in.
        socket = await handshake(url, live_server.url, sessions["sec-staff"])
        await socket.close()

    asyncio.run(attempt())


@pytest.fixture(scope="module")
def strict_origin_server(live_server_factory):
    """Origins checked strictly, the site being http://127.0.0.1 (port 80), as production is
    https://<host>."""
    server = live_server_factory(
        SWITCHBOARD_APRS_REPLAY="",
        SWITCHBOARD_STRICT_ORIGINS="1",
        SWITCHBOARD_ALLOWED_ORIGINS="http://127.0.0.1",
    )
    server.start_daphne()
    return server


@pytest.mark.parametrize(
    ("origin", "accepted"),
    [
        ("http://127.0.0.1", True),
        ("http://127.0.0.1:80", True),
        ("http://127.0.0.1:8000", False),  # same host, another port: another site
        ("https://127.0.0.1", False),  # same host, another scheme
        ("http://localhost", False),  # allowed host, not the site's origin
    ],
)
def test_strict_origin_check_wants_the_sites_scheme_and_port(
    strict_origin_server, origin, accepted
):
    url = strict_origin_server.ws_url + "/ws/news/"

    async def attempt() -> bool:
        try:
            socket = await handshake(url, origin)
        except websockets.exceptions.InvalidStatus as refused:
            assert refused.response.status_code == 403
            return False
        await socket.close()
        return True

    assert asyncio.run(attempt()) is accepted


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (None, chat_protocol.CLOSE_LOGIN_REQUIRED),
        ("sec-member", chat_protocol.CLOSE_FORBIDDEN),
        ("sec-staff", None),
    ],
    ids=["anonymous", "member", "staff"],
)
def test_staff_console_refuses_anonymous_and_non_staff(live_server, sessions, who, expected):
    session = sessions[who] if who else None
    code = asyncio.run(
        close_code_after_connect(live_server.ws_url + "/ws/chat/admin/", live_server.url, session)
    )
    assert code == expected


def test_notification_stream_refuses_anonymous_and_serves_members(live_server, sessions):
    url = live_server.ws_url + "/ws/notifications/"
    anonymous = asyncio.run(close_code_after_connect(url, live_server.url, None))
    member = asyncio.run(close_code_after_connect(url, live_server.url, sessions["sec-member"]))
    assert anonymous == notification_protocol.CLOSE_NOT_AUTHENTICATED
    assert member is None


def test_long_poll_feed_refuses_anonymous(live_server):
    try:
        urllib.request.urlopen(live_server.url + "/notifications/poll/?timeout=1", timeout=10)
    except urllib.error.HTTPError as error:
        assert error.code == 401
    else:
        raise AssertionError("an anonymous long-poll was answered")


# -- the long-poll endpoint, answered by the core's HTTP path -------------------------------------

POLL = "/notifications/poll/?timeout=1"
POLL_30S = "/notifications/poll/?timeout=30"
FORTY_MB = 40 * 1024 * 1024


def raw_http(port: int, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send a request as raw bytes (only `body` of it, whatever Content-Length says) and read the
    answer: (status, headers, body). The answer must come within 10 s."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin1").split("\r\n")
    headers = {
        name.lower(): value for name, _, value in (line.partition(": ") for line in lines[1:])
    }
    return int(lines[0].split()[1]), headers, rest


def request_head(
    method: str, path: str = POLL, host: str = "127.0.0.1", length: int | None = None
) -> str:
    head = f"{method} {path} HTTP/1.1\nHost: {host}\nConnection: close\n"
    if length is not None:
        head += f"Content-Length: {length}\n"
    return head


@pytest.mark.parametrize(
    ("head", "body", "status"),
    [
        (request_head("GET", host="evil.example"), b"", 400),
        (request_head("POST", length=5), b"x=1&y", 405),
        (request_head("PUT", length=FORTY_MB), b"", 413),  # answered before any body is sent
        (request_head("GET", length=100_000), b"x" * 100_000, 413),
    ],
    ids=["foreign-host", "post", "40-mb-declared", "100-kb-body"],
)
def test_long_poll_refuses_bad_requests_at_once(live_server, head, body, status):
    answer, headers, _ = raw_http(live_server.port, head, body)
    assert answer == status
    assert headers["x-content-type-options"] == "nosniff"


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1))


def test_a_streamed_40_mb_body_is_cut_off_without_growing_the_server(live_server):
    pid = live_server.processes[0].pid
    before = rss_kib(pid)
    sent = 0
    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=5) as sock:
        sock.sendall(
            b"POST /notifications/poll/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        try:
            while sent < FORTY_MB:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except OSError:  # reset, broken pipe, or a send that blocks: the server stopped reading
            pass
    assert sent < FORTY_MB / 4, f"the server read {sent} bytes of a body it must refuse"
    assert rss_kib(pid) - before < 10 * 1024, "the server grew while refusing the body"


def test_long_poll_answers_carry_djangos_security_headers(live_server):
    _, headers, _ = raw_http(live_server.port, request_head("GET"))
    page = urllib.request.urlopen(live_server.url + "/accounts/login/", timeout=10)
    for name in ("x-content-type-options", "referrer-policy", "x-frame-options"):
        assert headers[name] == page.headers[name], name
    assert headers["content-security-policy"] == page.headers["content-security-policy"]


# -- /readyz says which check fails, never why ------------------------------------------------


@pytest.fixture(scope="module")
def server_without_redis(live_server_factory):
    """REDIS_URL names a port nothing listens on: the channel layer and the cache are away."""
    server = live_server_factory(
        redis_url=f"redis://127.0.0.1:{free_port()}/0", SWITCHBOARD_APRS_REPLAY=""
    )
    server.start_daphne()
    return server


def test_readyz_tells_the_public_which_check_fails_and_metrics_tells_why(server_without_redis):
    server = server_without_redis
    try:
        urllib.request.urlopen(server.url + "/readyz", timeout=15)
    except urllib.error.HTTPError as error:
        status, body = error.code, json.loads(error.read())
    else:
        raise AssertionError("/readyz answered 200 without Redis")
    assert status == 503
    assert body == {
        "status": "unavailable",
        "checks": {"database": "ok", "channel_layer": "failing"},
    }
    metrics = urllib.request.urlopen(server.url + "/metrics", timeout=15).read().decode()
    assert re.search(r'realtime_readiness_failure\{check="channel_layer",error="\w+', metrics)


def test_logins_are_refused_with_503_while_the_cache_is_away(server_without_redis):
    server_without_redis.create_user("cacheless", PASSWORD)
    client = FormClient(server_without_redis.url)
    assert client.log_in("/accounts/login/", "cacheless", PASSWORD) == 503


# -- connections per user ------------------------------------------------------------------------

SOCKETS_PER_USER = 20  # the defaults of REALTIME_MAX_SOCKETS_PER_USER and _POLLS_PER_USER
POLLS_PER_USER = 5


def test_a_user_over_the_socket_cap_gets_close_4429_with_a_reason(live_server):
    session = live_server.create_user("socket-hoarder")
    url = live_server.ws_url + "/ws/notifications/"

    async def attempt():
        held = []
        for _ in range(SOCKETS_PER_USER):
            socket = await handshake(url, live_server.url, session)
            await socket.recv()  # the unread count: the socket is in
            held.append(socket)
        extra = await handshake(url, live_server.url, session)
        frame = json.loads(await extra.recv())
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            await extra.recv()
        await held.pop().close()
        # A freed place is taken again (the count drops once the server has seen the close).
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            again = await handshake(url, live_server.url, session)
            first = json.loads(await again.recv())
            if first.get("code") != "too_many_connections" or (
                asyncio.get_running_loop().time() > deadline
            ):
                break
            await again.close()
        for socket in [*held, again]:
            await socket.close()
        return frame, extra.close_code, first

    frame, code, first = asyncio.run(attempt())
    assert code == 4429
    assert frame["type"] == "error" and frame["code"] == "too_many_connections"
    assert first["type"] == notification_protocol.UNREAD


def waiting_polls(server) -> float:
    metrics = urllib.request.urlopen(server.url + "/metrics", timeout=10).read().decode()
    return sum(map(float, re.findall(r"^realtime_long_polls_waiting\{.*\} (\S+)$", metrics, re.M)))


def test_a_user_over_the_poll_cap_gets_429_at_once(live_server):
    session = live_server.create_user("poll-hoarder")
    head = request_head("GET", POLL_30S) + f"Cookie: sessionid={session}\n"
    raw = head.replace("\n", "\r\n").encode() + b"\r\n"
    held: list[socket.socket] = []
    try:
        for _ in range(POLLS_PER_USER):
            held.append(socket.create_connection(("127.0.0.1", live_server.port), timeout=10))
            held[-1].sendall(raw)
        deadline = time.monotonic() + 10
        while waiting_polls(live_server) < POLLS_PER_USER and time.monotonic() < deadline:
            time.sleep(0.05)
        status, _, body = raw_http(live_server.port, head)
    finally:
        for connection in held:
            connection.close()
    assert status == 429
    assert json.loads(body)["error"]["code"] == "too_many_polls"


# -- password guessing: the admin login and the site login share one set of limits ----------------

PASSWORD = "right-pass-word-123"


class FormClient:
    """A cookie-keeping HTTP client that fills in and posts login forms the way a browser does."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def open(self, path: str, data: dict[str, str] | None = None) -> tuple[int, str, str]:
        """(status, final URL, body), following redirects."""
        body = urllib.parse.urlencode(data).encode() if data is not None else None
        try:
            with self.opener.open(self.base_url + path, body, timeout=30) as response:
                return response.status, response.url, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.url, error.read().decode()

    def log_in(self, login_path: str, username: str, password: str) -> int:
        """Open the login page at `login_path` (wherever it redirects) and post its form."""
        _, url, page = self.open(login_path)
        fields = dict(
            re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page)
        )
        names = set(re.findall(r'<input[^>]*name="([^"]+)"', page))
        user_field = "login" if "login" in names else "username"
        fields.update({user_field: username, "password": password})
        status, _, _ = self.open(url.removeprefix(self.base_url), fields)
        return status

    def is_logged_in_to_admin(self) -> bool:
        status, url, _ = self.open("/admin/")
        return status == 200 and url.endswith("/admin/")


@pytest.fixture(scope="module")
def login_server(live_server_factory):
    """A server of its own: the guesses below exhaust 127.0.0.1's failure budget for a minute."""
    server = live_server_factory(SWITCHBOARD_APRS_REPLAY="")
    server.start_daphne()
    return server


def test_admin_login_refuses_the_right_password_after_15_wrong_ones(login_server):
    login_server.create_user("guessed-admin", PASSWORD, staff=True)
    attacker = FormClient(login_server.url)
    for attempt in range(15):
        attacker.log_in("/admin/login/?next=/admin/", "guessed-admin", f"wrong-{attempt}")
    attacker.log_in("/admin/login/?next=/admin/", "guessed-admin", PASSWORD)
    assert not attacker.is_logged_in_to_admin()
    # The admin's own form takes no password at all any more: it sends everyone to the site login.
    direct = FormClient(login_server.url)
    direct.open("/admin/login/", {"username": "guessed-admin", "password": PASSWORD})
    assert not direct.is_logged_in_to_admin()


def test_login_limits_hold_across_processes_sharing_redis(live_server_factory, redis_server):
    server = live_server_factory(redis_url=redis_server.url, SWITCHBOARD_APRS_REPLAY="")
    first, second = server.start_daphne(), server.start_daphne()
    server.create_user("guessed-twice", PASSWORD, staff=True)
    server.create_user("bystander", PASSWORD, staff=True)
    attacker = {port: FormClient(f"http://127.0.0.1:{port}") for port in (first, second)}
    # Six failures, three per process: over the per-account limit (5) only when counted together,
    # and under the per-IP one (10), so what refuses below is the account's count.
    for attempt in range(3):
        for port in (first, second):
            attacker[port].log_in("/accounts/login/", "guessed-twice", f"wrong-{attempt}")
    attacker[first].log_in("/accounts/login/", "guessed-twice", PASSWORD)
    assert not attacker[first].is_logged_in_to_admin()
    # Only that account is held: another user logs in from the same address.
    other = FormClient(f"http://127.0.0.1:{second}")
    other.log_in("/admin/login/?next=/admin/", "bystander", PASSWORD)
    assert other.is_logged_in_to_admin()


# -- CSRF on every state-changing endpoint ---------------------------------------------------------

SAMPLE_VALUES = {
    "int": "1",
    "slug": "lobby",
    "str": "lobby",
    "path": "lobby",
    "uuid": str(uuid.uuid4()),
}


def _route_example(pattern: RoutePattern) -> str:
    return re.sub(
        r"<(?:(\w+):)?\w+>",
        lambda match: SAMPLE_VALUES.get(match.group(1) or "str", "1"),
        str(pattern),
    )


def _regex_example(pattern: RegexPattern) -> str | None:
    text = pattern.regex.pattern.lstrip("^").rstrip("$").replace("\\Z", "")
    text = re.sub(r"\(\?P<\w+>[^)]*\)", "1", text)
    text = text.replace("\\/", "/").replace("\\.", ".")
    return None if re.search(r"[\\()\[\]*+?|{}]", text) else text


def example_urls() -> list[tuple[str, object]]:
    """One concrete URL for every pattern of the URLconf that can be filled in, with its view."""
    found: list[tuple[str, object]] = []

    def walk(patterns, prefix: str) -> None:
        for entry in patterns:
            part = (
                _route_example(entry.pattern)
                if isinstance(entry.pattern, RoutePattern)
                else _regex_example(entry.pattern)
            )
            if part is None:
                continue
            if isinstance(entry, URLResolver):
                walk(entry.url_patterns, prefix + part)
            elif isinstance(entry, URLPattern):
                found.append(("/" + prefix + part, entry.callback))

    walk(get_resolver().url_patterns, "")
    return found


@pytest.mark.django_db
def test_every_state_changing_endpoint_refuses_a_post_without_csrf_token():
    staff = get_user_model().objects.create_user(
        "csrf-staff", password="pass-word-123", is_staff=True, is_superuser=True
    )
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    checked, accepted = [], []
    for url, view in example_urls():
        try:
            if resolve(url).func is not view:
                continue
        except Exception:
            continue
        for method in ("post", "put", "patch", "delete"):
            response = getattr(client, method)(url, data={"x": "1"})
            checked.append(url)
            if response.status_code not in {403, 405}:  # 405: the method changes nothing
                accepted.append((method.upper(), url, response.status_code))
    assert len(set(checked)) >= 20, f"only {len(set(checked))} URLs were exercised"
    assert accepted == [], f"state-changing requests without a CSRF token got through: {accepted}"


# -- cookies under production settings -------------------------------------------------------------

COOKIE_PROBE = """
import json, django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
call_command("collectstatic", "--noinput", verbosity=0)
from django.contrib.auth import get_user_model
get_user_model().objects.create_user("cookie-user", password="pass-word-123")
from django.test import Client
client = Client(HTTP_HOST="switchboard.example.com")
page = client.get("/accounts/login/", secure=True)
token = page.cookies["csrftoken"].value
login = client.post("/accounts/login/", {"login": "cookie-user", "password": "pass-word-123",
                    "csrfmiddlewaretoken": token}, secure=True)
def attributes(morsel):
    return {"secure": bool(morsel["secure"]), "httponly": bool(morsel["httponly"]),
            "samesite": morsel["samesite"]}
print(json.dumps({"login_status": login.status_code,
                  "csrftoken": attributes(page.cookies["csrftoken"]),
                  "sessionid": attributes(login.cookies["sessionid"])}))
"""


def test_session_and_csrf_cookies_are_secure_under_production_settings(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SWITCHBOARD_")) and key != "REDIS_URL"
    }
    env.update(
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(50),
        DJANGO_ALLOWED_HOSTS="switchboard.example.com",
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DJANGO_STATIC_ROOT=str(tmp_path / "static"),
        DJANGO_EMAIL_URL="dummy://",
    )
    result = subprocess.run(
        [sys.executable, "-c", COOKIE_PROBE],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    cookies = json.loads(result.stdout.strip().splitlines()[-1])
    assert cookies["login_status"] == 302, "the login did not go through"
    assert cookies["csrftoken"]["secure"]
    assert cookies["sessionid"]["secure"]
    assert cookies["sessionid"]["httponly"]
    assert cookies["sessionid"]["samesite"] in {"Lax", "Strict"}


# -- message text is text --------------------------------------------------------------------------


def test_chat_message_markup_is_shown_as_text_never_rendered(live_server, sessions, browser):
    room = "security"

    async def post() -> None:
        sender = ChatClient(
            live_server.ws_url, room, sessions["sec-member"], origin=live_server.url, name="x"
        )
        await sender.start()
        await sender.say("before " + MARKUP)
        await sender.wait_until(lambda c: any(MARKUP in t for t in c.texts()), timeout=10)
        await sender.stop()

    run_in_thread(post())
    context = browser.new_context(base_url=live_server.url)
    context.add_cookies(
        [{"name": "sessionid", "value": sessions["sec-staff"], "url": live_server.url}]
    )
    page = context.new_page()
    try:
        # History: the page loads the message that was already there.
        page.goto(f"/rooms/{room}/")
        page.get_by_text("before " + MARKUP).first.wait_for(timeout=10_000)
        # Live: a message arriving over the socket while the page is open.
        run_in_thread(live_send(live_server, sessions["sec-member"], room, "live " + MARKUP))
        page.get_by_text("live " + MARKUP).first.wait_for(timeout=10_000)
        page.wait_for_timeout(300)
        assert page.evaluate("window.__pwned") is None, "message markup ran as script"
        assert page.locator("img[src=x]").count() == 0
        assert page.locator("b", has_text="bold").count() == 0
    finally:
        context.close()

    html = urllib.request.urlopen(f"{live_server.url}/rooms/{room}/", timeout=10).read().decode()
    assert MARKUP not in html, "the page's HTML carries the message markup unescaped"


# -- Content-Security-Policy: every page works under it -------------------------------------------

# (path, who, a selector that shows the page's live part works, or None)
PAGES = [
    ("/accounts/login/", None, None),
    ("/accounts/signup/", None, None),
    ("/", "sec-member", None),
    ("/rooms/security/", "sec-member", "[data-connection-state][data-state=open]"),
    ("/console/", "sec-staff", "[data-connection-state][data-state=open]"),
    ("/notifications/", "sec-member", None),
    ("/settings/tokens/", "sec-member", None),
    ("/news/", "sec-member", "[data-news-live][data-state=open]"),
    ("/admin/", "sec-staff", None),
]


def test_every_page_runs_under_the_content_security_policy(live_server, sessions, browser):
    failures = {}
    for path, who, live_part in PAGES:
        context = browser.new_context(base_url=live_server.url)
        problems = watch_pages(context)
        if who:
            context.add_cookies(
                [{"name": "sessionid", "value": sessions[who], "url": live_server.url}]
            )
        page = context.new_page()
        try:
            response = page.goto(path)
            assert "script-src 'self'" in response.headers["content-security-policy"]
            if live_part:
                page.locator(live_part).wait_for(timeout=15_000)
            page.wait_for_load_state("networkidle")
        finally:
            context.close()
        found = problems.csp_violations + problems.console_errors + problems.script_errors
        if found:
            failures[path] = found
    assert failures == {}


def run_in_thread(coroutine) -> None:
    """Run a coroutine to the end on its own loop in another thread: Playwright's sync API holds
    an event loop in this one while a test uses the browser."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, coroutine).result()


async def live_send(live_server, session: str, room: str, text: str) -> None:
    sender = ChatClient(live_server.ws_url, room, session, origin=live_server.url, name="live")
    await sender.start()
    await sender.say(text)
    await sender.wait_until(lambda c: text in c.texts(), timeout=10)
    await sender.stop()
