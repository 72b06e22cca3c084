"""Security, checked the way an attacker would try it:

- a WebSocket handshake from another origin is refused by real Daphne;
- the staff console refuses anonymous (4401) and non-staff (4403) users, notification streams and
  the long-poll feed refuse anonymous ones;
- every state-changing HTTP endpoint in the URLconf refuses a logged-in POST without a CSRF token;
- with production settings the session and CSRF cookies are Secure (and the session HttpOnly);
- chat message text is never rendered as HTML, in the live view or in the page's history.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import websockets
import websockets.exceptions
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.urls.resolvers import RegexPattern, RoutePattern

from chat import protocol as chat_protocol
from conftest import ROOT
from notifications import protocol as notification_protocol
from tests.chat_client import ChatClient, create_room, create_sessions

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
