"""Origin checks: refuse WebSocket handshakes (and HTTP requests) from pages of other sites.

Browsers send an ``Origin`` header with every WebSocket handshake, and cookies go along whatever
page opened the socket, so without this check any site a logged-in user visits could open a
socket as that user (cross-site WebSocket hijacking). Wrap the websocket application::

    "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(...)))

Allowed-origin patterns (as Django Channels, which follows ``ALLOWED_HOSTS``):

``"*"``
    any origin, and a missing ``Origin`` header too.
``"example.com"``, ``"127.0.0.1"``, ``"[::1]"``
    that host, on any scheme and port.
``".example.com"``
    ``example.com`` and all its subdomains.
``"example.com:8000"``
    that host on port 8000 only. (Channels ignores a port written without a scheme; here it
    counts, because ignoring what the operator wrote is surprising.)
``"https://example.com"``, ``"https://.example.com:8443"``
    scheme, host (or subdomain pattern) and port must all match; a missing port means the
    scheme's default (80 for http/ws, 443 for https/wss).

Strict mode (``strict=True``; AllowedHostsOriginValidator turns it on with the setting
``REALTIME_STRICT_ORIGINS``, the production default): only patterns with a scheme count, so an
origin must name the site's scheme, host and port exactly (``https://chat.example.com`` lets in
``https://chat.example.com`` and ``https://chat.example.com:443``, never
``http://chat.example.com`` or ``https://chat.example.com:8443``). Plain host patterns match
nothing; ``"*"`` still matches anything.

A request without an ``Origin`` header, or with ``Origin: null`` (sandboxed frames, ``file:``
pages), is refused unless ``"*"`` is allowed or ``allow_missing_origin=True``. Browsers always
send the header on WebSocket handshakes, but not on same-origin GET (or HEAD) requests: an HTTP
route wrapped in a validator usually wants ``allow_missing_origin=True``, so that page loads and
non-browser clients get through while cross-site requests (which carry their origin) do not.

Refusal: for a WebSocket, ``websocket.close`` in answer to ``websocket.connect``, before any
accept, so the server refuses the handshake (Daphne answers HTTP 403); for HTTP, a 403 response.
Other scope types pass through unchecked (Channels raises a ValueError for them).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.http.request import is_same_domain

from realtime.routing import as_application
from realtime.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "ws": 80, "https": 443, "wss": 443}
CHECKED_SCOPE_TYPES = frozenset({"websocket", "http"})


def _origin_header(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"origin":
            return value.decode("latin1")
    return None


def _parse(url: str) -> SplitResult | None:
    try:
        parsed = urlsplit(url.strip().lower())
        parsed.port  # noqa: B018 (raises ValueError for a bad port)
    except ValueError:
        return None
    return parsed


def _port(parsed: SplitResult) -> int | None:
    return parsed.port if parsed.port is not None else DEFAULT_PORTS.get(parsed.scheme)


def origin_matches(origin: str, pattern: str, strict: bool = False) -> bool:
    """True if ``origin`` (an ``Origin`` header value) matches one allowed-origin ``pattern``;
    with ``strict``, a pattern without a scheme matches nothing."""
    if pattern == "*":
        return True
    parsed_origin = _parse(origin)
    if parsed_origin is None or not parsed_origin.scheme or not parsed_origin.hostname:
        return False
    if "://" not in pattern:
        if strict:
            return False
        parsed_pattern = _parse("//" + pattern)
        if parsed_pattern is None or not parsed_pattern.hostname:
            return False
        # A leading "." survives urlsplit's hostname, which is what is_same_domain expects.
        if parsed_pattern.port is not None and parsed_pattern.port != _port(parsed_origin):
            return False
        return is_same_domain(parsed_origin.hostname, parsed_pattern.hostname)
    # CSRF_TRUSTED_ORIGINS' wildcard form, "https://*.example.com", means ".example.com" here.
    parsed_pattern = _parse(pattern.replace("://*.", "://.", 1))
    if parsed_pattern is None or not parsed_pattern.hostname:
        return False
    return (
        parsed_pattern.scheme == parsed_origin.scheme
        and _port(parsed_pattern) == _port(parsed_origin)
        and is_same_domain(parsed_origin.hostname, parsed_pattern.hostname)
    )


class OriginValidator:
    """Lets through only WebSocket/HTTP connections whose ``Origin`` is in ``allowed_origins``
    (``strict``: scheme, host and port must all match; see the module docstring)."""

    def __init__(
        self,
        application: ASGIApp,
        allowed_origins: Iterable[str],
        allow_missing_origin: bool = False,
        strict: bool = False,
    ) -> None:
        self.application = as_application(application, f"{type(self).__name__}(...)")
        self._allowed_origins = list(allowed_origins)
        self.allow_missing_origin = allow_missing_origin
        self._strict = strict

    @property
    def allowed_origins(self) -> Sequence[str]:
        return self._allowed_origins

    @property
    def strict(self) -> bool:
        return self._strict

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in CHECKED_SCOPE_TYPES:
            await self.application(scope, receive, send)
            return
        origin = _origin_header(scope)
        if self.valid_origin(origin):
            await self.application(scope, receive, send)
            return
        logger.warning(
            "Refused %s connection to %r from origin %r (allowed: %r)",
            scope["type"],
            scope.get("path", ""),
            origin,
            list(self.allowed_origins),
        )
        if scope["type"] == "websocket":
            await self._refuse_websocket(receive, send)
        else:
            await self._refuse_http(send)

    def valid_origin(self, origin: str | None) -> bool:
        """True if a connection with this ``Origin`` header value (None: absent) may proceed."""
        allowed = self.allowed_origins
        if origin is None or origin.strip().lower() == "null":
            return self.allow_missing_origin or "*" in allowed
        return any(origin_matches(origin, pattern, self.strict) for pattern in allowed)

    @staticmethod
    async def _refuse_websocket(receive: Receive, send: Send) -> None:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.close"})

    @staticmethod
    async def _refuse_http(send: Send) -> None:
        body = b"Forbidden: this origin may not use this endpoint.\n"
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [
                    (b"content-type", b"text/plain; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class AllowedHostsOriginValidator(OriginValidator):
    """An OriginValidator allowing the hosts of ``settings.ALLOWED_HOSTS``, or, when
    ``settings.REALTIME_STRICT_ORIGINS`` is on, exactly the origins (scheme://host[:port]) of
    ``settings.REALTIME_ALLOWED_ORIGINS``.

    Read at each connection (Channels reads it once, when the application is built), so
    ``override_settings`` works. With ``DEBUG`` on and ``ALLOWED_HOSTS`` empty it allows what
    Django's development server does: ``.localhost``, ``127.0.0.1`` and ``[::1]``.
    """

    def __init__(self, application: ASGIApp, allow_missing_origin: bool = False) -> None:
        super().__init__(application, (), allow_missing_origin=allow_missing_origin)

    @property
    def strict(self) -> bool:
        return bool(getattr(settings, "REALTIME_STRICT_ORIGINS", False))

    @property
    def allowed_origins(self) -> Sequence[str]:
        if self.strict:
            return list(getattr(settings, "REALTIME_ALLOWED_ORIGINS", []))
        allowed_hosts = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed_hosts:
            return [".localhost", "127.0.0.1", "[::1]"]
        return allowed_hosts


__all__ = ["AllowedHostsOriginValidator", "OriginValidator", "origin_matches"]
