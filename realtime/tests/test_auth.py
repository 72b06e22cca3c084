"""AuthMiddleware, login() and logout() against the real database session store and user model."""

import asyncio
from http.cookies import SimpleCookie

import pytest
from django.conf import settings
from django.contrib.auth import SESSION_KEY, get_user_model, user_logged_in, user_logged_out
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client
from django.urls import path

from realtime.auth import AuthMiddleware, AuthMiddlewareStack, get_user, login, logout
from realtime.db import database_sync_to_async
from realtime.generic.websocket import AsyncJsonWebsocketConsumer
from realtime.middleware import BaseMiddleware
from realtime.routing import URLRouter
from realtime.sessions import CookieMiddleware, SessionMiddleware, SessionMiddlewareStack
from realtime.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator
from realtime.tests.helpers import batch_sizes

MODEL_BACKEND = "django.contrib.auth.backends.ModelBackend"
PASSWORD = "correct-horse-battery"


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def user(transactional_db):
    return get_user_model().objects.create_user("alice", password=PASSWORD)


@pytest.fixture
def other_user(transactional_db):
    return get_user_model().objects.create_user("bob", password=PASSWORD)


@pytest.fixture
def session_key(user) -> str:
    """The session cookie of a browser that logged in through Django's own login view code."""
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


def cookie_header(key: str) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={key}".encode())]


def set_cookie_value(headers) -> str | None:
    for name, value in headers or []:
        if name.lower() == b"set-cookie":
            cookie = SimpleCookie(value.decode())
            if settings.SESSION_COOKIE_NAME in cookie:
                return cookie[settings.SESSION_COOKIE_NAME].value
    return None


class WhoAmIConsumer(AsyncJsonWebsocketConsumer):
    """Accepts and sends {"user": username or null}; {"login": name} / {"logout": true} frames
    call the helpers."""

    async def connect(self):
        await self.accept()
        await self.send_json({"user": self.username()})

    async def receive_json(self, content):
        if "login" in content:
            user = await database_sync_to_async(get_user_model().objects.get)(
                username=content["login"]
            )
            await login(self.scope, user, backend=MODEL_BACKEND)
        if "logout" in content:
            await logout(self.scope)
        await self.send_json({"user": self.username()})

    def username(self):
        user = self.scope["user"]
        return user.username if user.is_authenticated else None


async def who_am_i(headers=()) -> str | None:
    communicator = WebsocketCommunicator(
        AuthMiddlewareStack(WhoAmIConsumer.as_asgi()), "/ws/", headers=list(headers)
    )
    connected, _ = await communicator.connect()
    assert connected
    username = (await communicator.receive_json_from())["user"]
    await communicator.disconnect()
    return username


# -- scope["user"] ------------------------------------------------------------------------------


async def test_socket_with_a_logged_in_session_cookie_gets_that_user(session_key):
    assert await who_am_i(cookie_header(session_key)) == "alice"


async def test_socket_without_a_session_cookie_is_anonymous(transactional_db):
    assert await who_am_i() is None


async def test_socket_without_a_session_cookie_never_touches_the_database():
    # No django_db mark: pytest-django makes any database access here an error.
    assert await who_am_i() is None


async def test_socket_with_an_unknown_session_key_is_anonymous(transactional_db):
    assert await who_am_i(cookie_header("thisisnotasessionkey")) is None


@pytest.fixture
def bob_key(other_user) -> str:
    client = Client()
    assert client.login(username="bob", password=PASSWORD)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def test_sockets_connecting_together_get_their_own_users_in_one_database_trip(
    session_key, bob_key, monkeypatch
):
    """A reconnect burst looks its users up in one hop to the database thread; each socket
    still gets the user of its own session (or none), and one failing lookup fails alone."""
    from realtime import auth

    trips = batch_sizes(monkeypatch, auth._lookups, "run_all")
    keys = [session_key, bob_key, "thisisnotasessionkey", session_key, bob_key]
    names = await asyncio.gather(*(who_am_i(cookie_header(key)) for key in keys))
    assert names == ["alice", "bob", None, "alice", "bob"]
    assert sum(trips) == len(keys) and len(trips) < len(keys)

    broken = auth._get_user_sync

    def failing_for_bob(scope):
        if scope["session"].session_key == bob_key:
            raise RuntimeError("the database went away")
        return broken(scope)

    monkeypatch.setattr(auth, "_get_user_sync", failing_for_bob)
    results = await asyncio.gather(
        *(who_am_i(cookie_header(key)) for key in (session_key, bob_key)), return_exceptions=True
    )
    assert results[0] == "alice"
    assert isinstance(results[1], RuntimeError)


async def test_password_change_logs_out_sockets_using_the_old_session(user, session_key):
    await database_sync_to_async(user.set_password)("a-new-password-123")
    await database_sync_to_async(user.save)()
    assert await who_am_i(cookie_header(session_key)) is None


async def test_session_hashed_with_a_fallback_secret_key_stays_logged_in(settings, user):
    session_key = await database_sync_to_async(login_with_django_client)()
    old_key = settings.SECRET_KEY
    settings.SECRET_KEY = "a-brand-new-secret-key-for-this-test-only-0123456789"
    settings.SECRET_KEY_FALLBACKS = [old_key]
    assert await who_am_i(cookie_header(session_key)) == "alice"


def login_with_django_client() -> str:
    client = Client()
    assert client.login(username="alice", password=PASSWORD)
    return client.cookies[settings.SESSION_COOKIE_NAME].value


async def test_session_of_a_deactivated_user_is_anonymous(user, session_key):
    await get_user_model().objects.filter(pk=user.pk).aupdate(is_active=False)
    assert await who_am_i(cookie_header(session_key)) is None


async def test_user_is_resolved_before_the_first_event_reaches_the_application(session_key):
    seen = []

    async def app(scope, receive, send):
        with pytest.raises(ValueError, match="before it is ready"):
            scope["user"].is_authenticated  # noqa: B018
        await receive()
        seen.append(scope["user"].username)
        await send({"type": "websocket.close"})

    communicator = WebsocketCommunicator(AuthMiddlewareStack(app), "/ws/", headers=[])
    communicator.scope["headers"] = cookie_header(session_key)
    await communicator.connect()
    await communicator.wait()
    assert seen == ["alice"]


async def test_application_that_never_receives_never_resolves_the_user(session_key):
    scopes = []

    async def refusing_app(scope, receive, send):
        scopes.append(scope)
        raise ValueError("No route found for path '/nowhere/'")

    communicator = HttpCommunicator(
        AuthMiddlewareStack(refusing_app), "GET", "/nowhere/", headers=cookie_header(session_key)
    )
    with pytest.raises(ValueError, match="No route"):
        await communicator.wait()
    assert not scopes[0]["user"].is_ready


async def test_subclass_overriding_resolve_scope_decides_the_user(user):
    class QueryStringAuth(AuthMiddleware):
        async def resolve_scope(self, scope):
            username = scope["query_string"].decode().removeprefix("as=")
            scope["user"] = await get_user_model().objects.aget(username=username)

    application = CookieMiddleware(
        SessionMiddleware(QueryStringAuth(URLRouter([path("ws/", WhoAmIConsumer.as_asgi())])))
    )
    communicator = WebsocketCommunicator(application, "/ws/?as=alice")
    await communicator.connect()
    assert (await communicator.receive_json_from())["user"] == "alice"
    await communicator.disconnect()


def test_auth_middleware_is_a_base_middleware_as_in_channels():
    assert isinstance(AuthMiddleware(WhoAmIConsumer.as_asgi()), BaseMiddleware)


async def test_get_user_returns_the_session_user(session_key):
    seen = []

    async def app(scope, receive, send):
        seen.append(await get_user(scope))
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body"})

    communicator = HttpCommunicator(
        SessionMiddlewareStack(app), "GET", "/", headers=cookie_header(session_key)
    )
    await communicator.get_response()
    assert seen[0].username == "alice"


async def test_get_user_without_session_middleware_raises():
    with pytest.raises(ValueError, match="SessionMiddleware"):
        await get_user({"type": "websocket"})


async def test_auth_middleware_without_session_middleware_raises():
    communicator = ApplicationCommunicator(
        AuthMiddleware(WhoAmIConsumer.as_asgi()), {"type": "websocket", "headers": []}
    )
    with pytest.raises(ValueError, match="SessionMiddleware must be above it"):
        await communicator.wait()


# -- login and logout ---------------------------------------------------------------------------


async def test_login_on_a_socket_sets_the_scope_user(user):
    communicator = WebsocketCommunicator(AuthMiddlewareStack(WhoAmIConsumer.as_asgi()), "/ws/")
    await communicator.connect()
    assert (await communicator.receive_json_from())["user"] is None
    await communicator.send_json_to({"login": "alice"})
    assert (await communicator.receive_json_from())["user"] == "alice"
    await communicator.disconnect()


async def test_login_saves_a_session_that_identifies_the_user(user):
    scopes = []

    class Recorder(WhoAmIConsumer):
        async def connect(self):
            scopes.append(self.scope)
            await super().connect()

    communicator = WebsocketCommunicator(AuthMiddlewareStack(Recorder.as_asgi()), "/ws/")
    await communicator.connect()
    await communicator.receive_json_from()
    await communicator.send_json_to({"login": "alice"})
    await communicator.receive_json_from()
    key = scopes[0]["session"].session_key
    stored = await database_sync_to_async(lambda: SessionStore(key).load())()
    assert stored[SESSION_KEY] == str(user.pk)
    assert await who_am_i(cookie_header(key)) == "alice"
    await communicator.disconnect()


async def test_login_rotates_the_session_key(user, transactional_db):
    anonymous = SessionStore()
    await anonymous.aset("cart", [1])
    await anonymous.acreate()
    scopes = []

    class Recorder(WhoAmIConsumer):
        async def connect(self):
            scopes.append(self.scope)
            await super().connect()

    communicator = WebsocketCommunicator(
        AuthMiddlewareStack(Recorder.as_asgi()),
        "/ws/",
        headers=cookie_header(anonymous.session_key),
    )
    await communicator.connect()
    await communicator.receive_json_from()
    await communicator.send_json_to({"login": "alice"})
    await communicator.receive_json_from()
    session = scopes[0]["session"]
    assert session.session_key != anonymous.session_key
    assert await session.aget("cart") == [1]  # data of the anonymous session is kept
    await communicator.disconnect()


async def test_login_as_another_user_starts_a_fresh_session(session_key, other_user):
    scopes = []

    class Recorder(WhoAmIConsumer):
        async def connect(self):
            scopes.append(self.scope)
            await super().connect()

    communicator = WebsocketCommunicator(
        AuthMiddlewareStack(Recorder.as_asgi()), "/ws/", headers=cookie_header(session_key)
    )
    await communicator.connect()
    assert (await communicator.receive_json_from())["user"] == "alice"
    await communicator.send_json_to({"login": "bob"})
    assert (await communicator.receive_json_from())["user"] == "bob"
    assert scopes[0]["session"].session_key != session_key
    await communicator.disconnect()
    assert await who_am_i(cookie_header(session_key)) is None


async def test_login_sends_user_logged_in(user):
    received = []

    def receiver(sender, user, **kwargs):
        received.append(user.username)

    user_logged_in.connect(receiver)
    try:
        communicator = WebsocketCommunicator(AuthMiddlewareStack(WhoAmIConsumer.as_asgi()), "/ws/")
        await communicator.connect()
        await communicator.receive_json_from()
        await communicator.send_json_to({"login": "alice"})
        await communicator.receive_json_from()
        await communicator.disconnect()
    finally:
        user_logged_in.disconnect(receiver)
    assert received == ["alice"]


async def test_login_before_accept_sends_the_new_session_cookie_with_the_handshake(user):
    class LoginOnConnect(WhoAmIConsumer):
        async def connect(self):
            account = await database_sync_to_async(get_user_model().objects.get)(username="alice")
            await login(self.scope, account, backend=MODEL_BACKEND)
            await super().connect()

    communicator = WebsocketCommunicator(AuthMiddlewareStack(LoginOnConnect.as_asgi()), "/ws/")
    await communicator.connect()
    new_key = set_cookie_value(communicator.response_headers)
    await communicator.disconnect()
    assert new_key
    assert await who_am_i(cookie_header(new_key)) == "alice"


async def test_login_with_several_backends_and_none_named_raises(user):
    scope = {"session": SessionStore(), "user": None}
    with pytest.raises(ValueError, match="multiple authentication backends"):
        await login(scope, user)


async def test_login_without_a_user_raises(transactional_db):
    with pytest.raises(ValueError, match="User must be passed"):
        await login({"session": SessionStore()}, None)


async def test_logout_on_a_socket_makes_it_anonymous_and_ends_the_session(session_key):
    communicator = WebsocketCommunicator(
        AuthMiddlewareStack(WhoAmIConsumer.as_asgi()), "/ws/", headers=cookie_header(session_key)
    )
    await communicator.connect()
    assert (await communicator.receive_json_from())["user"] == "alice"
    await communicator.send_json_to({"logout": True})
    assert (await communicator.receive_json_from())["user"] is None
    await communicator.disconnect()
    assert await who_am_i(cookie_header(session_key)) is None


async def test_logout_sends_user_logged_out_with_the_user(session_key):
    received = []

    def receiver(sender, user, **kwargs):
        received.append(user.username if user else None)

    user_logged_out.connect(receiver)
    try:
        communicator = WebsocketCommunicator(
            AuthMiddlewareStack(WhoAmIConsumer.as_asgi()),
            "/ws/",
            headers=cookie_header(session_key),
        )
        await communicator.connect()
        await communicator.receive_json_from()
        await communicator.send_json_to({"logout": True})
        await communicator.receive_json_from()
        await communicator.disconnect()
    finally:
        user_logged_out.disconnect(receiver)
    assert received == ["alice"]
