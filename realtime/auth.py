"""Django authentication for HTTP and WebSocket connections: ``scope["user"]``, login, logout.

``AuthMiddlewareStack(inner)`` = ``CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))``
gives every connection ``scope["user"]``: the user of the Django session the browser's session
cookie names (the one Django's login set), or an ``AnonymousUser``::

    class ChatConsumer(AsyncJsonWebsocketConsumer):
        async def connect(self):
            if not self.scope["user"].is_authenticated:
                await self.close(code=4401)
                return
            await self.accept()

The user is resolved lazily, through ``database_sync_to_async``, when the application first asks
for an event (``receive()``: for a WebSocket, the ``websocket.connect``), so a connection that the
router or an origin check refuses never touches the database; a connection without a session
cookie never does either. Touching ``scope["user"]`` before the first ``receive()`` raises
``ValueError("Accessing scope user before it is ready.")``, as in Channels. Connections that
resolve their users at the same moment (a reconnect storm) share one hop to the database thread
(`realtime.batching`), each in its own context and with its own answer.

As Django does per request, the session's auth hash is checked against the user's current one: a
password change (which changes the hash) logs out every socket that connects afterwards with an
old session, and a hash made with a ``SECRET_KEY_FALLBACKS`` key is upgraded.

``login(scope, user)`` / ``logout(scope)`` mirror Django's and Channels': login rotates the session
key (or starts a new session if it belonged to someone else), stores the user id, backend and
auth hash, sets ``scope["user"]`` and sends ``user_logged_in``; unlike Channels it also saves the
session, since a WebSocket has no response to save it on. ``logout`` sends ``user_logged_out``,
flushes the session (deleting it from the store) and sets an ``AnonymousUser``. See
:mod:`realtime.sessions` for how the new session key reaches the browser.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import (
    BACKEND_SESSION_KEY,
    HASH_SESSION_KEY,
    SESSION_KEY,
    get_user_model,
    load_backend,
    user_logged_in,
    user_logged_out,
)
from django.utils.crypto import constant_time_compare
from django.utils.functional import LazyObject, empty

from realtime.batching import DatabaseCalls
from realtime.db import database_sync_to_async
from realtime.middleware import BaseMiddleware
from realtime.sessions import CookieMiddleware, SessionMiddleware
from realtime.types import ASGIApp, Message, Receive, Scope, Send
from realtime.user_lookup import backend_user


def _require_session(scope: Scope, what: str) -> Any:
    if "session" not in scope:
        raise ValueError(
            f"{what} cannot find session in scope. You should wrap your consumer in "
            "SessionMiddleware."
        )
    return scope["session"]


def _user_id_from_session(session: Any) -> Any:
    # Stored as a string; the user model's primary key field turns it back into its type.
    return get_user_model()._meta.pk.to_python(session[SESSION_KEY])


def _get_user_sync(scope: Scope) -> Any:
    return user_of_session(_require_session(scope, "get_user()"))


def user_of_session(session: Any) -> Any:
    """The user `session` is logged in as, checked as Django checks a request: the backend is
    still configured, the user exists (and the backend accepts them: active), and the session's
    auth hash is the user's current one (else the session is flushed). An AnonymousUser
    otherwise."""
    from django.contrib.auth.models import AnonymousUser

    user = None
    try:
        user_id = _user_id_from_session(session)
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:
        pass
    else:
        if backend_path in settings.AUTHENTICATION_BACKENDS:
            user = backend_user(load_backend(backend_path), user_id)
            if hasattr(user, "get_session_auth_hash"):
                session_hash = session.get(HASH_SESSION_KEY)
                current_hash = user.get_session_auth_hash()
                if not (session_hash and constant_time_compare(session_hash, current_hash)):
                    if session_hash and any(
                        constant_time_compare(session_hash, fallback_hash)
                        for fallback_hash in user.get_session_auth_fallback_hash()
                    ):
                        # Made with a SECRET_KEY_FALLBACKS key: upgrade it, as Django does.
                        session.cycle_key()
                        session[HASH_SESSION_KEY] = current_hash
                    else:
                        # The password changed since this session logged in.
                        session.flush()
                        user = None
    return user or AnonymousUser()


async def get_user(scope: Scope) -> Any:
    """The user of the session in ``scope`` (needs SessionMiddleware), or an AnonymousUser."""
    from django.contrib.auth.models import AnonymousUser

    session = _require_session(scope, "get_user()")
    if session.session_key is None and SESSION_KEY not in session:
        # No session cookie (and no login on this connection): nothing to look up.
        return AnonymousUser()
    return await _lookups.call(_get_user_sync, scope)


# Connections that arrive together (a reconnect storm) look their users up in one hop to the
# database thread instead of one hop each; a connection alone is served at once, as before.
_lookups = DatabaseCalls()


def _backend_for(user: Any, backend: str | None) -> str:
    if backend is not None:
        return backend
    if getattr(user, "backend", None):
        return user.backend
    if len(settings.AUTHENTICATION_BACKENDS) == 1:
        return settings.AUTHENTICATION_BACKENDS[0]
    raise ValueError(
        "You have multiple authentication backends configured and therefore must provide the "
        "`backend` argument or set the `backend` attribute on the user."
    )


def _login_sync(scope: Scope, user: Any, backend: str | None) -> None:
    session = _require_session(scope, "login()")
    if user is None:
        user = scope.get("user")
    if user is None:
        raise ValueError("User must be passed as an argument or must be present in the scope.")
    session_auth_hash = (
        user.get_session_auth_hash() if hasattr(user, "get_session_auth_hash") else ""
    )
    if SESSION_KEY in session:
        if _user_id_from_session(session) != user.pk or (
            session_auth_hash
            and not constant_time_compare(session.get(HASH_SESSION_KEY, ""), session_auth_hash)
        ):
            # Never reuse another user's session.
            session.flush()
    else:
        session.cycle_key()
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = _backend_for(user, backend)
    session[HASH_SESSION_KEY] = session_auth_hash
    session.save()
    scope["user"] = user
    user_logged_in.send(sender=user.__class__, request=None, user=user)


async def login(scope: Scope, user: Any, backend: str | None = None) -> None:
    """Log ``user`` in on this connection's session (see the module docstring)."""
    await database_sync_to_async(_login_sync)(scope, user, backend)


def _logout_sync(scope: Scope) -> None:
    from django.contrib.auth.models import AnonymousUser

    session = _require_session(scope, "Login")
    user = scope.get("user")
    if isinstance(user, UserLazyObject) and not user.is_ready:
        user = None
    if user is not None and getattr(user, "is_authenticated", False):
        # Before the flush, so receivers can still see who logged out.
        user_logged_out.send(sender=user.__class__, request=None, user=user)
    session.flush()
    if "user" in scope:
        scope["user"] = AnonymousUser()


async def logout(scope: Scope) -> None:
    """Log the user out: flush the session and put an AnonymousUser in ``scope["user"]``."""
    await database_sync_to_async(_logout_sync)(scope)


class UserLazyObject(LazyObject):
    """``scope["user"]`` until the middleware has resolved it."""

    def _setup(self) -> None:
        raise ValueError("Accessing scope user before it is ready.")

    @property
    def is_ready(self) -> bool:
        return self.__dict__["_wrapped"] is not empty


class _ResolvingReceive:
    """The application's receive(): resolves ``scope["user"]`` before the first event."""

    def __init__(self, middleware: AuthMiddleware, scope: Scope, receive: Receive) -> None:
        self.middleware = middleware
        self.scope = scope
        self.user = scope["user"]
        self.real_receive = receive
        self.resolved = False

    async def __call__(self) -> Message:
        if not self.resolved:
            await self.middleware.resolve_scope(self.scope)
            resolved_user = self.scope["user"]
            if isinstance(self.user, UserLazyObject) and resolved_user is not self.user:
                # resolve_scope replaced the user: scopes copied from ours (a router's) hold the
                # lazy object, so point it at the resolved user too.
                self.user._wrapped = resolved_user
            self.resolved = True
        return await self.real_receive()


class AuthMiddleware(BaseMiddleware):
    """Adds ``scope["user"]`` from the session; must run inside SessionMiddleware.

    If ``scope["user"]`` is already set (an outer AuthMiddleware), the scope passes through.
    """

    def populate_scope(self, scope: Scope) -> None:
        if "session" not in scope:
            raise ValueError(
                "AuthMiddleware cannot find session in scope. SessionMiddleware must be above it."
            )
        if "user" not in scope:
            scope["user"] = UserLazyObject()

    async def resolve_scope(self, scope: Scope) -> None:
        """Resolve ``scope["user"]``; called before the application's first event.

        Channels' hook: a subclass may override it (a token instead of the session, say) and
        either set ``scope["user"]._wrapped`` or replace ``scope["user"]``.
        """
        scope["user"]._wrapped = await get_user(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "user" in scope:
            return await self.inner(scope, receive, send)
        scope = dict(scope)
        self.populate_scope(scope)
        return await self.inner(scope, _ResolvingReceive(self, scope, receive), send)


def AuthMiddlewareStack(inner: ASGIApp) -> ASGIApp:  # Channels' name, a factory
    """``CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))``."""
    return CookieMiddleware(SessionMiddleware(AuthMiddleware(inner)))


# -- Channels 1.x: user decorators for message consumers ------------------------------------------
#
# Given a consumer class or an ASGI application, each returns it behind AuthMiddlewareStack, which
# gives class consumers the same user as scope["user"].

USER_SESSION_KEYS = (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY)


def _user_of_session(session: Any) -> Any:
    from django.contrib.auth.models import AnonymousUser

    if session is None:
        return AnonymousUser()
    return _get_user_sync({"session": session})


def _set_http_user(message: Any) -> bool:
    message.user = _user_of_session(message.http_session)
    return True


def _set_channel_user(message: Any) -> bool:
    message.user = _user_of_session(message.channel_session)
    return True


def _copy_user_to_channel_session(message: Any) -> bool:
    if message.http_session is not None:
        for key in USER_SESSION_KEYS:
            if key in message.http_session:
                message.channel_session[key] = message.http_session[key]
    return True


def http_session_user(consumer: Callable[..., Any]) -> Callable[..., Any]:
    """``message.user``, from ``message.http_session`` (see ``realtime.sessions.http_session``,
    which this applies too): the logged-in user, or an AnonymousUser."""
    from realtime.message import is_message_consumer, message_decorator
    from realtime.sessions import http_session

    if not is_message_consumer(consumer):
        return AuthMiddlewareStack(consumer)
    return http_session(message_decorator(_set_http_user)(consumer))


def channel_session_user(consumer: Callable[..., Any]) -> Callable[..., Any]:
    """``message.user``, from ``message.channel_session`` (applied too): the user that
    :func:`channel_session_user_from_http` stored there on connect, or an AnonymousUser."""
    from realtime.message import is_message_consumer, message_decorator
    from realtime.sessions import channel_session

    if not is_message_consumer(consumer):
        return AuthMiddlewareStack(consumer)
    return channel_session(message_decorator(_set_channel_user)(consumer))


def channel_session_user_from_http(consumer: Callable[..., Any]) -> Callable[..., Any]:
    """For ``websocket.connect``: copies the login of the HTTP session (the browser's cookie)
    into the channel session, so later messages find the user with :func:`channel_session_user`;
    sets ``message.user``, ``message.http_session`` and ``message.channel_session``."""
    from realtime.message import is_message_consumer, message_decorator
    from realtime.sessions import channel_session, http_session

    if not is_message_consumer(consumer):
        return AuthMiddlewareStack(consumer)
    inner = message_decorator(_copy_user_to_channel_session)(
        message_decorator(_set_http_user)(consumer)
    )
    return http_session(channel_session(inner))


__all__ = [
    "AuthMiddleware",
    "AuthMiddlewareStack",
    "UserLazyObject",
    "channel_session_user",
    "channel_session_user_from_http",
    "get_user",
    "http_session_user",
    "login",
    "logout",
]
