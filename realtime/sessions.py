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

The store is ``settings.SESSION_ENGINE``'s ``SessionStore``; any engine works.

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

import copy
import datetime
import logging
import time
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.contrib.sessions.exceptions import SessionInterrupted
from django.http import parse_cookie
from django.http.cookie import SimpleCookie
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
        store_class = import_module(settings.SESSION_ENGINE).SessionStore
        session_key = scope["cookies"].get(settings.SESSION_COOKIE_NAME)
        scope = dict(scope, session=SessionLazyObject(store_class, session_key))
        saver = _SessionSaver(scope, send)
        result = await self.inner(scope, receive, saver.send)
        if scope["type"] == "websocket":
            # Changes made after the handshake that nobody saved.
            try:
                await saver.commit(None, every_request=False)
            except SessionInterrupted:
                logger.warning("Session of a closed websocket was deleted before it was saved")
        return result


def SessionMiddlewareStack(inner: ASGIApp) -> ASGIApp:  # Channels' name, a factory
    """``CookieMiddleware(SessionMiddleware(inner))``."""
    return CookieMiddleware(SessionMiddleware(inner))


__all__ = [
    "CookieMiddleware",
    "SessionLazyObject",
    "SessionMiddleware",
    "SessionMiddlewareStack",
    "save_session",
]
