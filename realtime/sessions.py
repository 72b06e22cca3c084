"""Cookies and Django sessions for HTTP and WebSocket connections.

``CookieMiddleware`` parses the request's ``Cookie`` header into ``scope["cookies"]`` (a dict, like
``request.COOKIES``). ``SessionMiddleware`` (inside it) puts the Django session named by the
session cookie in ``scope["session"]``: a lazy object, so a connection that never touches the
session costs nothing (no store is built, nothing is read)::

    application = SessionMiddlewareStack(URLRouter([...]))   # CookieMiddleware(SessionMiddleware())

    class CartConsumer(AsyncJsonWebsocketConsumer):
        async def receive_json(self, content):
            await self.scope["session"].aset("cart", content["items"])   # Django's async API
            await self.scope["session"].asave()

The store is ``settings.SESSION_ENGINE``'s ``SessionStore``; any engine works. With Django's
database engine (the default) it is `DatabaseSessionStore`, the same store reading its row with
one plain statement (every authenticated socket's connect reads one, so a reconnect storm reads
thousands; the ORM took ten times as long to build the query as SQLite took to answer it).

When a changed session is saved, and how the browser learns its key:

- HTTP: when the response starts (``http.response.start``) and the session was modified (or
  ``SESSION_SAVE_EVERY_REQUEST``), it is saved and a ``Set-Cookie`` added, exactly as Django's
  ``SessionMiddleware`` does; an emptied session deletes the cookie. Responses with status 500
  save nothing.
- WebSocket: when the consumer accepts the socket (``websocket.accept``) with a modified session,
  it is saved and a ``Set-Cookie`` added to the accept's ``headers`` (Django Channels saves
  nothing here). Servers that honour ASGI accept headers (uvicorn, hypercorn) send it with the
  handshake response and the browser stores it, so a ``login()`` in ``connect()`` before
  ``accept()`` survives a reload; Daphne 4 drops accept headers, so behind Daphne the browser
  keeps its old cookie: log in over HTTP for a login that outlives the socket. Changes made
  later are saved when the consumer calls ``scope["session"].save()`` (``asave()`` in async
  code), by ``login()``, or when the connection ends; the browser's cookie cannot change after
  the handshake.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import functools
import hashlib
import logging
import time
from collections.abc import Callable
from importlib import import_module
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import iscoroutinefunction
from django.conf import settings
from django.contrib.sessions.backends import db as db_sessions
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.db import connections, router
from django.http import parse_cookie
from django.http.cookie import SimpleCookie
from django.utils import timezone
from django.utils.functional import LazyObject, empty
from django.utils.http import http_date

from realtime.db import database_sync_to_async
from realtime.routing import as_application
from realtime.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)


class CookieMiddleware:
    """Adds ``scope["cookies"]`` (``{name: value}``) from the ``Cookie`` header(s).

    Needs a scope with ``headers`` (HTTP and WebSocket); anything else is a ValueError, as in
    Channels. Also offers :meth:`set_cookie` / :meth:`delete_cookie` to add ``Set-Cookie``
    headers to an ``http.response.start`` or ``websocket.accept`` message.
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = as_application(inner, "CookieMiddleware(...)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "headers" not in scope:
            raise ValueError(
                "CookieMiddleware was passed a scope that did not have a headers key "
                "(make sure it is only passed HTTP or WebSocket connections)"
            )
        # HTTP/2 may split cookies over several headers; they join with "; ".
        raw = "; ".join(
            value.decode("latin1") for name, value in scope["headers"] if name.lower() == b"cookie"
        )
        cookies = parse_cookie(raw) if raw else {}
        return await self.inner(dict(scope, cookies=cookies), receive, send)

    @staticmethod
    def set_cookie(
        message: Message,
        key: str,
        value: str = "",
        max_age: int | float | None = None,
        expires: str | datetime.datetime | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: str | None = "lax",
    ) -> None:
        """Append a ``Set-Cookie`` header to ``message`` (same arguments as Django's
        ``HttpResponse.set_cookie``; a datetime ``expires`` becomes a ``max_age``)."""
        cookie: SimpleCookie = SimpleCookie()
        cookie[key] = str(value)
        morsel = cookie[key]
        if isinstance(expires, datetime.datetime):
            if expires.tzinfo is None:
                expires = expires.replace(tzinfo=datetime.UTC)
            delta = expires - datetime.datetime.now(datetime.UTC)
            max_age = max(0, int(delta.total_seconds()) + 1)
            expires = None
        if expires is not None:
            morsel["expires"] = expires
        if max_age is not None:
            morsel["max-age"] = int(max_age)
            if not expires:
                morsel["expires"] = http_date(time.time() + max_age)
        if path is not None:
            morsel["path"] = path
        if domain is not None:
            morsel["domain"] = domain
        if secure:
            morsel["secure"] = True
        if httponly:
            morsel["httponly"] = True
        if samesite:
            if samesite.lower() not in {"strict", "lax", "none"}:
                raise ValueError(f"samesite must be 'strict', 'lax' or 'none', not {samesite!r}")
            morsel["samesite"] = samesite
        header = morsel.output(header="").strip().encode("latin1")
        message["headers"] = [*message.get("headers", []), (b"set-cookie", header)]

    @classmethod
    def delete_cookie(
        cls,
        message: Message,
        key: str,
        path: str = "/",
        domain: str | None = None,
        samesite: str | None = None,
    ) -> None:
        """Append a ``Set-Cookie`` header that makes the browser forget cookie ``key``."""
        cls.set_cookie(
            message,
            key,
            max_age=0,
            path=path,
            domain=domain,
            expires="Thu, 01 Jan 1970 00:00:00 GMT",
            samesite=samesite,
            secure=key.startswith(("__Secure-", "__Host-"))
            or bool(samesite and samesite.lower() == "none"),
        )


class SessionLazyObject(LazyObject):
    """``scope["session"]``: the ``SessionStore`` for the cookie's key, built on first use."""

    def __init__(self, store_class: type[SessionBase], session_key: str | None) -> None:
        super().__init__()
        self.__dict__["_store_class"] = store_class
        self.__dict__["_session_key"] = session_key

    def _setup(self) -> None:
        self._wrapped = self.__dict__["_store_class"](self.__dict__["_session_key"])

    def __copy__(self) -> Any:
        if self._wrapped is empty:
            return type(self)(self.__dict__["_store_class"], self.__dict__["_session_key"])
        return copy.copy(self._wrapped)

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        if self._wrapped is empty:
            result = type(self)(self.__dict__["_store_class"], self.__dict__["_session_key"])
            memo[id(self)] = result
            return result
        return copy.deepcopy(self._wrapped, memo)

    @property
    def is_built(self) -> bool:
        """True once something touched the session (so there may be something to save)."""
        return self._wrapped is not empty


class _SessionSaver:
    """One connection's session: saves it and sends its cookie at the right moments."""

    def __init__(self, scope: Scope, send: Send) -> None:
        self.scope = scope
        self.session: SessionLazyObject = scope["session"]
        self.real_send = send

    async def send(self, message: Message) -> None:
        message_type = message["type"]
        if message_type == "http.response.start" and message.get("status", 200) < 500:
            await self.commit(message, every_request=settings.SESSION_SAVE_EVERY_REQUEST)
        elif message_type == "websocket.accept":
            await self.commit(message, every_request=False)
        await self.real_send(message)

    async def commit(self, message: Message | None, every_request: bool) -> None:
        """Save a modified session; with a ``message``, add its cookie (or its deletion)."""
        if not self.session.is_built:
            return
        session = self.session
        cookie_name = settings.SESSION_COOKIE_NAME
        if session.is_empty():
            if message is not None and cookie_name in self.scope["cookies"]:
                CookieMiddleware.delete_cookie(
                    message,
                    cookie_name,
                    path=settings.SESSION_COOKIE_PATH,
                    domain=settings.SESSION_COOKIE_DOMAIN,
                    samesite=settings.SESSION_COOKIE_SAMESITE,
                )
            return
        if not (session.modified or every_request):
            return
        await save_session(session)
        if message is not None:
            if session.get_expire_at_browser_close():
                max_age: int | None = None
            else:
                max_age = session.get_expiry_age()
            CookieMiddleware.set_cookie(
                message,
                cookie_name,
                session.session_key or "",
                max_age=max_age,
                domain=settings.SESSION_COOKIE_DOMAIN,
                path=settings.SESSION_COOKIE_PATH,
                secure=settings.SESSION_COOKIE_SECURE,
                httponly=settings.SESSION_COOKIE_HTTPONLY,
                samesite=settings.SESSION_COOKIE_SAMESITE,
            )


async def save_session(session: Any) -> None:
    """Save ``session`` from async code and mark it unmodified, so a later change is seen.

    A session deleted meanwhile (a logout in another tab) raises Django's SessionInterrupted.
    """

    def save() -> None:
        try:
            session.save()
        except UpdateError as exc:
            raise SessionInterrupted(
                "The session was deleted before the connection saved it. The user may have "
                "logged out in another request, for example."
            ) from exc
        session.modified = False

    await database_sync_to_async(save)()


class SessionMiddleware:
    """Puts the Django session in ``scope["session"]``; must run inside CookieMiddleware.

    If ``scope["session"]`` is already set (an outer SessionMiddleware), the scope passes
    through untouched. See the module docstring for when the session is saved.
    """

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = as_application(inner, "SessionMiddleware(...)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if "session" in scope:
            return await self.inner(scope, receive, send)
        if "cookies" not in scope:
            raise ValueError(
                "No cookies in scope - SessionMiddleware needs to run inside of CookieMiddleware."
            )
        store_class = session_store_class()
        session_key = scope["cookies"].get(settings.SESSION_COOKIE_NAME)
        scope = dict(scope, session=SessionLazyObject(store_class, session_key))
        saver = _SessionSaver(scope, send)
        inner: Any = self.inner  # its result is passed on, whatever the application returned
        result = await inner(scope, receive, saver.send)
        if scope["type"] == "websocket":
            # Changes made after the handshake that nobody saved.
            try:
                await saver.commit(None, every_request=False)
            except SessionInterrupted:
                logger.warning("Session of a closed websocket was deleted before it was saved")
        return result


class DatabaseSessionStore(db_sessions.SessionStore):
    """Django's database session store; `load()` reads the row with one plain SELECT of the
    unexpired session's data, without the ORM's query building. Everything else is Django's."""

    @property
    def key_salt(self) -> str:
        # Django salts the session's signature with the store's class name: sign as its store,
        # so that each reads what the other wrote.
        return "django.contrib.sessions." + db_sessions.SessionStore.__qualname__

    def _get_session_from_db(self) -> Any:
        model = self.model
        connection = connections[router.db_for_read(model)]
        quote = connection.ops.quote_name
        now = connection.ops.adapt_datetimefield_value(timezone.now())
        sql = (
            f"SELECT {quote('session_data')} FROM {quote(model._meta.db_table)} "
            f"WHERE {quote('session_key')} = %s AND {quote('expire_date')} > %s"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [self.session_key, now])
            row = cursor.fetchone()
        if row is None:
            self._session_key = None  # as Django's store: a missing or expired session
            return None
        return model(session_key=self.session_key, session_data=row[0])


def session_store_class() -> type:
    """``settings.SESSION_ENGINE``'s store class, or `DatabaseSessionStore` for Django's
    database engine."""
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.db":
        return DatabaseSessionStore
    return import_module(settings.SESSION_ENGINE).SessionStore


def SessionMiddlewareStack(inner: ASGIApp) -> ASGIApp:  # Channels' name, a factory
    """``CookieMiddleware(SessionMiddleware(inner))``."""
    return CookieMiddleware(SessionMiddleware(inner))


# -- Channels 1.x: session decorators for message consumers --------------------------------------
#
# For message consumers (realtime.message). Class consumers get the same from middleware and the
# instance itself: scope["session"] (SessionMiddleware) is the HTTP session, scope["user"]
# (AuthMiddleware) the user, and attributes of the consumer instance, which lives as long as the
# connection, are its channel session.

CHANNEL_SESSION_KEY_PREFIX = "chn"


def _session_store_class() -> type[SessionBase]:
    engine = import_module(settings.SESSION_ENGINE)
    if settings.SESSION_ENGINE == "django.contrib.sessions.backends.signed_cookies":
        raise ValueError(
            "You cannot use channels session functionality with signed cookie sessions! "
            "Set SESSION_ENGINE to a stored engine (db, cache, cached_db, file)."
        )
    return engine.SessionStore


def channel_session_key(reply_channel: str) -> str:
    """The session key of a reply channel's channel session (stable, 32 characters)."""
    digest = hashlib.sha256(reply_channel.encode("utf-8")).hexdigest()
    return CHANNEL_SESSION_KEY_PREFIX + digest[:29]


def session_for_reply_channel(reply_channel: str) -> SessionBase:
    """The channel session of ``reply_channel``: a SessionStore under a key derived from the
    name, empty until something is stored (sync: it may read the session store)."""
    key = channel_session_key(reply_channel)
    store = _session_store_class()(session_key=key)
    store.keys()  # load now; a key the store does not know is dropped by the load...
    store._session_key = key  # ...and put back, so the session is saved under it
    return store


def _save_channel_session(session: SessionBase) -> None:
    try:
        if session.exists(session.session_key or ""):
            session.save()
        else:
            session.save(must_create=True)
    except CreateError:
        session.save()  # another process created it meanwhile
    session.modified = False


def _open_channel_session(message: Any) -> bool:
    if getattr(message, "_channel_session_opened", False):
        return True  # stacked decorators: the outer one manages it
    reply_channel = getattr(message, "reply_channel", None)
    if reply_channel is None:
        raise ValueError(
            "No reply_channel sent to consumer; @channel_session can only be used on messages "
            "containing it."
        )
    message.channel_session = session_for_reply_channel(reply_channel.name)
    message._channel_session_opened = True
    message._channel_session_owner = True
    return True


def _close_channel_session(message: Any, succeeded: bool) -> None:
    if not message.__dict__.pop("_channel_session_owner", False):
        return
    message._channel_session_opened = False
    session = message.channel_session
    if message.content.get("type") == "websocket.disconnect" and succeeded:
        session.delete()  # the connection is gone: nothing will read it again
    elif succeeded and session.modified and not session.is_empty():
        _save_channel_session(session)


def _refuse_class(consumer: Any, decorator: str) -> None:
    from realtime.message import is_message_consumer

    if not is_message_consumer(consumer):
        raise TypeError(
            f"@{decorator} is for message consumers (functions of one message), not "
            f"{consumer!r}: a class consumer lives as long as its connection, so keep "
            f"connection state on self; for the HTTP session and the user wrap it in "
            f"SessionMiddlewareStack / AuthMiddlewareStack (or use @http_session, @http_session_user)"
        )


def channel_session(consumer: Callable[..., Any]) -> Callable[..., Any]:
    """``message.channel_session``: a session that lives as long as the connection, shared by
    every message with the same reply channel, saved after the consumer returns if it changed
    (not when it raised) and deleted after the connection's ``websocket.disconnect``.

    Class consumers keep connection state on ``self`` instead; given one, this raises TypeError.
    """
    from realtime.message import message_decorator

    _refuse_class(consumer, "channel_session")
    return message_decorator(_open_channel_session, _close_channel_session)(consumer)


def _session_key_from_message(message: Any) -> str | None:
    content = message.content
    query_string = content.get("query_string", b"")
    if isinstance(query_string, bytes | bytearray):
        query_string = bytes(query_string).decode("latin-1")
    if isinstance(query_string, str) and query_string:
        keys = parse_qs(query_string).get("session_key")
        if keys:
            return keys[0]
    cookies = content.get("cookies")
    if not isinstance(cookies, dict):
        raw = "; ".join(
            value.decode("latin-1") if isinstance(value, bytes) else str(value)
            for name, value in content.get("headers", [])
            if (name.decode("latin-1") if isinstance(name, bytes) else str(name)).lower()
            == "cookie"
        )
        cookies = parse_cookie(raw) if raw else {}
    return cookies.get(settings.SESSION_COOKIE_NAME)


def _open_http_session(message: Any) -> bool:
    if getattr(message, "_http_session_opened", False):
        return True
    session_key = _session_key_from_message(message)
    session: SessionBase | None = None
    if session_key:
        store_class = import_module(settings.SESSION_ENGINE).SessionStore
        candidate = store_class(session_key=session_key)
        if candidate.exists(session_key):
            candidate.keys()  # loaded here, so an async consumer can read it without the ORM
            session = candidate
    message.http_session = session
    message._http_session_opened = True
    message._http_session_owner = True
    return True


def _close_http_session(message: Any, succeeded: bool) -> None:
    if not message.__dict__.pop("_http_session_owner", False):
        return
    message._http_session_opened = False
    session = message.http_session
    if succeeded and session is not None and session.modified:
        session.save()


def http_session(consumer: Callable[..., Any]) -> Callable[..., Any]:
    """``message.http_session``: the Django session named by the ``session_key`` query
    parameter or, failing that, the session cookie; None when there is none or the store does
    not know it (it never creates one: that is a view's job). Saved after the consumer if it
    changed. A session key in a URL ends up in server logs: prefer the cookie.

    Given a consumer class or an ASGI application, returns it behind SessionMiddlewareStack,
    which gives class consumers the same session as ``scope["session"]``."""
    from realtime.message import is_message_consumer, message_decorator

    if not is_message_consumer(consumer):
        return SessionMiddlewareStack(consumer)
    return message_decorator(_open_http_session, _close_http_session)(consumer)


def _link_http_to_channel_session(message: Any) -> bool:
    cookie_name = settings.SESSION_COOKIE_NAME
    if message.http_session is not None and cookie_name not in message.channel_session:
        message.channel_session[cookie_name] = message.http_session.session_key
    elif message.http_session is None and cookie_name in message.channel_session:
        store_class = import_module(settings.SESSION_ENGINE).SessionStore
        key = message.channel_session[cookie_name]
        candidate = store_class(session_key=key)
        message.http_session = None
        if candidate.exists(key):
            candidate.keys()  # loaded now, as in http_session
            message.http_session = candidate
    return True


def channel_and_http_session(consumer: Callable[..., Any]) -> Callable[..., Any]:
    """Both :func:`channel_session` and :func:`http_session`; the HTTP session's key is kept in
    the channel session (on ``websocket.connect``, where the cookie is), and later messages get
    ``message.http_session`` from it."""
    from realtime.message import message_decorator

    _refuse_class(consumer, "channel_and_http_session")
    linked = message_decorator(_link_http_to_channel_session)(consumer)
    return http_session(channel_session(linked))


# -- enforce_ordering ------------------------------------------------------------------------------

ORDERING_WAIT_SECONDS = 30.0


class _Ordering:
    """Per reply channel: the next ``order`` to run, and the messages waiting for their turn."""

    def __init__(self) -> None:
        self.next_order = 0
        self.changed = asyncio.Condition()


# Orderings of reply channels that are not a connection's own (whose ordering lives on the
# connection's reply channel object and goes with it); the oldest are forgotten past the limit.
_orderings: dict[str, _Ordering] = {}
ORDERINGS_KEPT = 10_000


def _ordering_for(reply_channel: Any) -> _Ordering:
    if hasattr(reply_channel, "connection"):  # a connection's ReplyChannel
        state = reply_channel.__dict__.get("_ordering")
        if state is None:
            state = reply_channel.__dict__["_ordering"] = _Ordering()
        return state
    state = _orderings.get(reply_channel.name)
    if state is None:
        while len(_orderings) >= ORDERINGS_KEPT:
            _orderings.pop(next(iter(_orderings)))
        state = _orderings[reply_channel.name] = _Ordering()
    return state


def enforce_ordering(consumer: Callable[..., Any] | None = None, *, slight: bool = False) -> Any:
    """Run a connection's messages strictly in their ``order``, one at a time.

    Every connection served by message consumers already does this (its events are handled one
    after another); the decorator makes it a guarantee even when messages of one connection are
    handed to the consumer concurrently: a message waits (up to ``ORDERING_WAIT_SECONDS``, then
    RuntimeError naming the missing order) until every earlier one has been handled. With
    ``slight=True`` only ``websocket.connect`` (order 0) must come first. Messages must carry an
    ``order`` and a reply channel (WebSocket and HTTP messages do). The decorated consumer is
    async (a sync one runs in a thread, as usual). A consumer class is returned as it is: it
    already handles its connection's events in order, one at a time.
    """
    if consumer is None:
        return functools.partial(enforce_ordering, slight=slight)
    from realtime.message import is_message_consumer

    if not is_message_consumer(consumer):
        return consumer  # a class consumer already handles its events in order, one at a time
    call = consumer if iscoroutinefunction(consumer) else database_sync_to_async(consumer)

    @functools.wraps(consumer)
    async def ordered(message: Any, *args: Any, **kwargs: Any) -> Any:
        order = message.content.get("order")
        if not isinstance(order, int) or message.reply_channel is None:
            raise ValueError(
                f"No `order` value (or no reply channel) in message {message!r}; "
                "@enforce_ordering requires both."
            )
        name = message.reply_channel.name
        state = _ordering_for(message.reply_channel)
        first_needed = min(order, 1) if slight else order
        # A connection knows which of its messages are done, decorated consumers or not.
        connection = getattr(message.reply_channel, "connection", None)
        if connection is not None and connection.completed_order >= first_needed - 1:
            state.next_order = max(state.next_order, first_needed)
        async with state.changed:
            try:
                await asyncio.wait_for(
                    state.changed.wait_for(lambda: state.next_order >= first_needed),
                    ORDERING_WAIT_SECONDS,
                )
            except TimeoutError:
                raise RuntimeError(
                    f"Message {order} of {name} waited {ORDERING_WAIT_SECONDS}s for message "
                    f"{state.next_order}, which never came"
                ) from None
        try:
            return await call(message, *args, **kwargs)
        finally:
            async with state.changed:
                state.next_order = max(state.next_order, order + 1)
                state.changed.notify_all()
            if message.content.get("type") == "websocket.disconnect":
                _orderings.pop(name, None)

    return ordered


__all__ = [
    "CookieMiddleware",
    "DatabaseSessionStore",
    "SessionLazyObject",
    "SessionMiddleware",
    "SessionMiddlewareStack",
    "channel_and_http_session",
    "channel_session",
    "enforce_ordering",
    "http_session",
    "save_session",
    "session_for_reply_channel",
    "session_store_class",
]
