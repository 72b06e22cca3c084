"""Fixtures for the chat tests: users with real session cookies, rooms, a fresh in-memory layer,
and sockets opened through the real session + auth middleware."""

from __future__ import annotations

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client

from chat import ratelimit
from chat.history_cache import latest_pages
from chat.models import Room
from chat.presence import presence, presence_announcer
from realtime.auth import AuthMiddlewareStack
from realtime.routing import URLRouter
from realtime.testing import WebsocketCommunicator

PASSWORD = "pass-word-123"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    """Users are created in almost every test; PBKDF2 would dominate the run time."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture(autouse=True)
def fresh_chat_state():
    """Rate windows, presence and the latest pages live in the process; every test starts
    without them."""
    ratelimit._limiter = None
    presence._local.clear()
    presence_announcer._announced_at.clear()
    latest_pages.clear()
    yield
    presence._local.clear()
    latest_pages.clear()


@pytest.fixture
def media_root(settings, tmp_path):
    """Uploaded files go to a folder of the test's own (returned)."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return tmp_path / "media"


def png_bytes(size: tuple[int, int] = (64, 48), color: str = "teal") -> bytes:
    """A small real PNG image."""
    import io

    from PIL import Image

    output = io.BytesIO()
    Image.new("RGB", size, color).save(output, "PNG")
    return output.getvalue()


def upload(client: Client, room_slug: str, name: str, data: bytes, content_type: str = ""):
    """POST one file to the room's upload URL with `client`; returns the response."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    file = SimpleUploadedFile(name, data, content_type=content_type or "application/octet-stream")
    return client.post(f"/rooms/{room_slug}/attachments/", {"file": file})


def make_user(username: str, staff: bool = False):
    user = get_user_model().objects.create_user(username, f"{username}@example.com", PASSWORD)
    if staff:
        user.is_staff = True
        user.save()
    return user


@pytest.fixture
def alice(transactional_db):
    return make_user("alice")


@pytest.fixture
def bob(transactional_db):
    return make_user("bob")


@pytest.fixture
def moderator(transactional_db):
    return make_user("mod", staff=True)


@pytest.fixture
def room(transactional_db):
    return Room.objects.create(slug="general", title="General")


def session_cookie(user) -> str:
    """The session key of a browser logged in as `user` (Django's own login code)."""
    client = Client()
    client.force_login(user)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def chat_application():
    import chat.routing

    return AuthMiddlewareStack(URLRouter(chat.routing.websocket_urlpatterns))


async def open_socket(path: str, user=None) -> WebsocketCommunicator:
    """Connect to `path` through the session and auth middleware, as `user` (None: anonymous)."""
    from realtime.db import database_sync_to_async

    headers = []
    if user is not None:
        key = await database_sync_to_async(session_cookie)(user)
        headers.append((b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode()))
    communicator = WebsocketCommunicator(chat_application(), path, headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def join_room(slug: str, user=None, query: str = "") -> tuple[WebsocketCommunicator, dict]:
    """Open a room socket and read its opening frames; returns it and the history frame."""
    path = f"/ws/chat/{slug}/" + (f"?{query}" if query else "")
    communicator = await open_socket(path, user)
    history = await communicator.receive_json_from()
    assert history["type"] == "history", history
    presence_frame = await communicator.receive_json_from()
    assert presence_frame["type"] == "presence", presence_frame
    return communicator, history


async def next_of_type(communicator: WebsocketCommunicator, frame_type: str, timeout: float = 1):
    """The next frame of `frame_type`, skipping others (presence updates, typing)."""
    while True:
        frame = await communicator.receive_json_from(timeout)
        if frame["type"] == frame_type:
            return frame


async def frames_within(communicator: WebsocketCommunicator, seconds: float = 0.3) -> list[dict]:
    """Every frame that arrives within `seconds`."""
    frames = []
    while not await communicator.receive_nothing(seconds):
        frames.append(await communicator.receive_json_from())
    return frames


async def apost(room, user, text: str):
    """Save a message as `user` (no broadcast); returns its RoomEvent."""
    from chat.services import post_message
    from realtime.db import database_sync_to_async

    return await database_sync_to_async(post_message)(user, room, text)


# --- Room pages in Chromium (the browser tests) -------------------------------------------------

BROWSER_TIMEOUT = 10_000  # ms a browser test waits for anything on a page


@pytest.fixture
def open_page(site, browser, request):
    """open_page(user, path=ROOM_PAGE, check_csp=True, **context_options) -> a page in its own
    browser context, logged in as `user`, a key of the module's `site` fixture (its live server
    and {username: session key}). `path` defaults to the module's ROOM_PAGE (else "/"). A page
    with a connection badge is returned once its socket is live. Every page runs under the site's
    Content-Security-Policy: a violation fails the test (`check_csp=False` for a page that is
    Django's own DEBUG error page, whose inline styles the policy blocks)."""
    from playwright.sync_api import expect

    from conftest import watch_pages

    server, keys = site
    default_path = getattr(request.module, "ROOM_PAGE", "/")
    contexts, problems = [], []

    def open_(user: str, path: str | None = None, check_csp: bool = True, **context_options):
        context = browser.new_context(**context_options)
        if check_csp:
            problems.append(watch_pages(context))
        context.add_cookies([{"name": "sessionid", "value": keys[user], "url": server.url}])
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(BROWSER_TIMEOUT)
        page.goto(server.url + (path or default_path))
        badge = page.locator("[data-connection-state]")
        if badge.count():
            expect(badge).to_have_attribute("data-state", "open")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert [p.csp_violations for p in problems if p.csp_violations] == []


def say(page, text: str) -> None:
    """Type `text` into the room page's composer and send it."""
    page.fill("[data-composer-text]", text)
    page.press("[data-composer-text]", "Enter")


def message(page, text: str):
    """The text of a delivered (not pending) message containing `text`."""
    return page.locator(".message:not(.is-pending) .message-text", has_text=text)


def message_item(page, text: str):
    """The delivered message whose text contains `text` (its whole list item)."""
    return page.locator(
        ".message:not(.is-pending)", has=page.locator(".message-text", has_text=text)
    )
