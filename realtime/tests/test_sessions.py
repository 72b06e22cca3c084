"""CookieMiddleware and SessionMiddleware, over real ASGI calls and the database session store."""

import copy
import datetime
from http.cookies import SimpleCookie

import pytest
from django.conf import settings
from django.contrib.sessions.backends.db import SessionStore

from realtime.db import database_sync_to_async
from realtime.generic.websocket import WebsocketConsumer
from realtime.sessions import (
    CookieMiddleware,
    SessionMiddleware,
    SessionMiddlewareStack,
)
from realtime.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator


def set_cookies(headers) -> dict[str, SimpleCookie]:
    """The Set-Cookie headers of a response, parsed, by cookie name."""
    cookies = {}
    for name, value in headers:
        if name.lower() == b"set-cookie":
            cookie = SimpleCookie(value.decode())
            cookies.update({key: cookie for key in cookie})
    return cookies


def session_cookie(cookie_value: str) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={cookie_value}".encode())]


@pytest.fixture
def stored_session(transactional_db) -> SessionStore:
    session = SessionStore()
    session["colour"] = "green"
    session.create()
    return session


def load_session(session_key: str) -> dict:
    return dict(SessionStore(session_key).load())


class ScopeRecorder:
    """An HTTP app that runs ``action(scope)`` and answers 200 (or ``status``)."""

    def __init__(self, action=None, status: int = 200) -> None:
        self.action = action
        self.status = status
        self.scope = None

    async def __call__(self, scope, receive, send):
        self.scope = scope
        await receive()
        if self.action is not None:
            await self.action(scope)
        await send({"type": "http.response.start", "status": self.status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def get(application, headers=()) -> dict:
    return await HttpCommunicator(application, "GET", "/", headers=list(headers)).get_response()


# -- cookies ------------------------------------------------------------------------------------


async def test_cookie_header_is_parsed_into_scope_cookies():
    app = ScopeRecorder()
    await get(CookieMiddleware(app), [(b"cookie", b"theme=dark; lang=sv")])
    assert app.scope["cookies"] == {"theme": "dark", "lang": "sv"}


async def test_several_cookie_headers_are_merged():
    app = ScopeRecorder()
    await get(CookieMiddleware(app), [(b"cookie", b"theme=dark"), (b"cookie", b"lang=sv")])
    assert app.scope["cookies"] == {"theme": "dark", "lang": "sv"}


async def test_request_without_cookies_gets_an_empty_dict():
    app = ScopeRecorder()
    await get(CookieMiddleware(app))
    assert app.scope["cookies"] == {}


async def test_cookie_middleware_refuses_a_scope_without_headers():
    communicator = ApplicationCommunicator(CookieMiddleware(ScopeRecorder()), {"type": "channel"})
    with pytest.raises(ValueError, match="did not have a headers key"):
        await communicator.wait()


def test_set_cookie_adds_a_set_cookie_header_with_its_attributes():
    message = {"type": "http.response.start", "status": 200}
    CookieMiddleware.set_cookie(message, "theme", "dark", max_age=60, httponly=True, secure=True)
    morsel = set_cookies(message["headers"])["theme"]["theme"]
    assert morsel.value == "dark"
    assert morsel["max-age"] == "60"
    assert morsel["httponly"] is True
    assert morsel["secure"] is True
    assert morsel["samesite"] == "lax"
    assert morsel["path"] == "/"


def test_set_cookie_turns_a_datetime_expiry_into_a_max_age():
    message = {"type": "http.response.start", "status": 200}
    expires = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=1)
    CookieMiddleware.set_cookie(message, "theme", "dark", expires=expires)
    morsel = set_cookies(message["headers"])["theme"]["theme"]
    assert 3590 <= int(morsel["max-age"]) <= 3601
    assert morsel["expires"].endswith("GMT")


def test_set_cookie_refuses_an_unknown_samesite_value():
    with pytest.raises(ValueError, match="'sometimes'"):
        CookieMiddleware.set_cookie({}, "theme", "dark", samesite="sometimes")


def test_delete_cookie_expires_the_cookie_at_once():
    message = {"type": "http.response.start", "status": 200}
    CookieMiddleware.delete_cookie(message, "theme")
    morsel = set_cookies(message["headers"])["theme"]["theme"]
    assert (morsel.value, morsel["max-age"]) == ("", "0")


# -- sessions -----------------------------------------------------------------------------------


async def test_session_middleware_needs_cookie_middleware():
    communicator = HttpCommunicator(SessionMiddleware(ScopeRecorder()), "GET", "/")
    with pytest.raises(ValueError, match="inside of CookieMiddleware"):
        await communicator.get_response()


async def test_session_named_by_the_cookie_is_in_the_scope(stored_session):
    async def read(scope):
        scope["colour"] = await scope["session"].aget("colour")

    app = ScopeRecorder(read)
    await get(SessionMiddlewareStack(app), session_cookie(stored_session.session_key))
    assert app.scope["colour"] == "green"


async def test_session_nobody_touches_is_never_built_and_sets_no_cookie(stored_session):
    app = ScopeRecorder()
    response = await get(SessionMiddlewareStack(app), session_cookie(stored_session.session_key))
    assert not app.scope["session"].is_built
    assert set_cookies(response["headers"]) == {}


async def test_scope_with_an_untouched_session_can_be_copied(stored_session):
    app = ScopeRecorder()
    await get(SessionMiddlewareStack(app), session_cookie(stored_session.session_key))
    copied = copy.deepcopy(app.scope)
    assert await copied["session"].aget("colour") == "green"


async def test_modified_session_is_saved_and_its_cookie_set_on_the_http_response(
    transactional_db,
):
    async def remember(scope):
        await scope["session"].aset("colour", "blue")

    response = await get(SessionMiddlewareStack(ScopeRecorder(remember)))
    cookie = set_cookies(response["headers"])[settings.SESSION_COOKIE_NAME]
    morsel = cookie[settings.SESSION_COOKIE_NAME]
    assert morsel["httponly"] is True
    assert morsel["max-age"] == str(settings.SESSION_COOKIE_AGE)
    stored = await database_sync_to_async(load_session)(morsel.value)
    assert stored == {"colour": "blue"}


async def test_session_expiring_at_browser_close_gets_a_session_cookie(settings, transactional_db):
    settings.SESSION_EXPIRE_AT_BROWSER_CLOSE = True

    async def remember(scope):
        await scope["session"].aset("colour", "blue")

    response = await get(SessionMiddlewareStack(ScopeRecorder(remember)))
    morsel = set_cookies(response["headers"])[settings.SESSION_COOKIE_NAME][
        settings.SESSION_COOKIE_NAME
    ]
    assert (morsel["max-age"], morsel["expires"]) == ("", "")


async def test_read_only_session_use_sets_no_cookie(stored_session):
    async def read(scope):
        await scope["session"].aget("colour")

    response = await get(
        SessionMiddlewareStack(ScopeRecorder(read)), session_cookie(stored_session.session_key)
    )
    assert set_cookies(response["headers"]) == {}


async def test_server_error_response_saves_no_session_change(stored_session):
    async def change(scope):
        await scope["session"].aset("colour", "red")

    await get(
        SessionMiddlewareStack(ScopeRecorder(change, status=500)),
        session_cookie(stored_session.session_key),
    )
    stored = await database_sync_to_async(load_session)(stored_session.session_key)
    assert stored == {"colour": "green"}


async def test_emptied_session_deletes_the_cookie(stored_session):
    async def empty(scope):
        await scope["session"].aflush()

    response = await get(
        SessionMiddlewareStack(ScopeRecorder(empty)), session_cookie(stored_session.session_key)
    )
    cookie = set_cookies(response["headers"])[settings.SESSION_COOKIE_NAME]
    assert cookie[settings.SESSION_COOKIE_NAME]["max-age"] == "0"


async def test_unknown_session_key_gives_an_empty_session(transactional_db):
    app = ScopeRecorder()

    async def read(scope):
        scope["keys"] = list(await scope["session"].akeys())

    app.action = read
    await get(SessionMiddlewareStack(app), session_cookie("nosuchsessionkeyatall"))
    assert app.scope["keys"] == []


async def test_inner_session_middleware_keeps_the_outer_session(transactional_db):
    app = ScopeRecorder()
    outer_session = None

    async def capture_outer(scope, receive, send):
        nonlocal outer_session
        outer_session = scope["session"]
        await SessionMiddleware(app)(scope, receive, send)

    await get(SessionMiddlewareStack(capture_outer))
    assert app.scope["session"] is outer_session


# -- websockets ---------------------------------------------------------------------------------


async def test_session_modified_before_accept_rides_on_the_handshake(transactional_db):
    async def app(scope, receive, send):
        await receive()
        await scope["session"].aset("colour", "blue")
        await send({"type": "websocket.accept"})
        await receive()

    communicator = WebsocketCommunicator(SessionMiddlewareStack(app), "/ws/")
    connected, _ = await communicator.connect()
    assert connected
    cookie = set_cookies(communicator.response_headers)[settings.SESSION_COOKIE_NAME]
    key = cookie[settings.SESSION_COOKIE_NAME].value
    assert await database_sync_to_async(load_session)(key) == {"colour": "blue"}
    await communicator.disconnect()


async def test_handshake_without_session_changes_sets_no_cookie(stored_session):
    async def app(scope, receive, send):
        await receive()
        await scope["session"].aget("colour")
        await send({"type": "websocket.accept"})
        await receive()

    communicator = WebsocketCommunicator(
        SessionMiddlewareStack(app), "/ws/", headers=session_cookie(stored_session.session_key)
    )
    await communicator.connect()
    assert set_cookies(communicator.response_headers) == {}
    await communicator.disconnect()


async def test_websocket_session_change_after_accept_is_saved_when_the_socket_closes(
    stored_session,
):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await scope["session"].aset("colour", message["text"])
        await receive()

    communicator = WebsocketCommunicator(
        SessionMiddlewareStack(app), "/ws/", headers=session_cookie(stored_session.session_key)
    )
    await communicator.connect()
    await communicator.send_to(text_data="purple")
    await communicator.disconnect()
    stored = await database_sync_to_async(load_session)(stored_session.session_key)
    assert stored == {"colour": "purple"}


async def test_consumer_can_save_the_session_itself(stored_session):
    saved = []

    async def app(scope, receive, send):
        await receive()
        await scope["session"].aset("colour", "teal")
        await scope["session"].asave()
        saved.append(await database_sync_to_async(load_session)(stored_session.session_key))
        await send({"type": "websocket.close"})

    communicator = WebsocketCommunicator(
        SessionMiddlewareStack(app), "/ws/", headers=session_cookie(stored_session.session_key)
    )
    connected, _ = await communicator.connect()
    await communicator.wait()
    assert not connected
    assert saved == [{"colour": "teal"}]


async def test_sync_consumer_uses_and_saves_the_session_like_a_django_view(stored_session):
    class Counter(WebsocketConsumer):
        def connect(self):
            self.accept()

        def receive(self, text_data=None, bytes_data=None):
            session = self.scope["session"]
            session["visits"] = session.get("visits", 0) + 1
            session.save()
            self.send(text_data=f"{session['colour']} {session['visits']}")

    communicator = WebsocketCommunicator(
        SessionMiddlewareStack(Counter.as_asgi()),
        "/ws/",
        headers=session_cookie(stored_session.session_key),
    )
    await communicator.connect()
    await communicator.send_to(text_data="visit")
    assert await communicator.receive_from() == "green 1"
    await communicator.disconnect()
    stored = await database_sync_to_async(load_session)(stored_session.session_key)
    assert stored == {"colour": "green", "visits": 1}
