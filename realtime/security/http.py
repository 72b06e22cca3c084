"""What Django's middleware does for a request, for HTTP answered by the core's own consumers.

Requests routed to an AsyncHttpConsumer (a long-poll, say) never pass through Django's middleware,
so the core does for them what a Django page gets from SecurityMiddleware,
XFrameOptionsMiddleware and ``HttpRequest.get_host()``, reading the same settings:

``host_is_allowed(scope)``
    the ``Host`` header (``X-Forwarded-Host`` when ``USE_X_FORWARDED_HOST``) must match
    ``ALLOWED_HOSTS``, as ``get_host()`` checks it (with ``DEBUG`` on and ``ALLOWED_HOSTS`` empty:
    ``.localhost``, ``127.0.0.1``, ``[::1]``). AsyncHttpConsumer answers 400 otherwise.
``security_headers(scope)``
    the headers every response carries, each only when its setting asks for it:

    ==========================  ==============================================================
    X-Content-Type-Options      ``nosniff`` when ``SECURE_CONTENT_TYPE_NOSNIFF``
    Referrer-Policy             ``SECURE_REFERRER_POLICY``
    Cross-Origin-Opener-Policy  ``SECURE_CROSS_ORIGIN_OPENER_POLICY``
    X-Frame-Options             ``X_FRAME_OPTIONS`` (Django's default ``DENY``)
    Strict-Transport-Security   ``SECURE_HSTS_SECONDS`` (+ ``_INCLUDE_SUBDOMAINS``, ``_PRELOAD``),
                                on secure requests only (https, or ``SECURE_PROXY_SSL_HEADER``)
    Content-Security-Policy     ``CONTENT_SECURITY_POLICY``, a policy string
    ==========================  ==============================================================

``add_security_headers(scope, send)`` wraps an ASGI ``send`` so that ``http.response.start``
gains those headers, except the ones the application set itself.
"""

from __future__ import annotations

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from realtime.types import Headers, Message, Scope, Send

#: What ``get_host()`` allows with DEBUG on and ALLOWED_HOSTS empty.
DEBUG_ALLOWED_HOSTS = [".localhost", "127.0.0.1", "[::1]"]


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return value.decode("latin1")
    return None


def request_host(scope: Scope) -> str:
    """The host a request names, as Django's ``HttpRequest._get_raw_host()`` finds it."""
    if getattr(settings, "USE_X_FORWARDED_HOST", False):
        forwarded = _header(scope, b"x-forwarded-host")
        if forwarded:
            return forwarded
    host = _header(scope, b"host")
    if host:
        return host
    server = scope.get("server") or ("unknown", 0)
    return f"{server[0]}:{server[1]}"


def allowed_hosts() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        return list(DEBUG_ALLOWED_HOSTS)
    return hosts


def host_is_allowed(scope: Scope) -> bool:
    """True if the request's host is one ALLOWED_HOSTS accepts."""
    domain, _port = split_domain_port(request_host(scope))
    return bool(domain) and validate_host(domain, allowed_hosts())


def is_secure(scope: Scope) -> bool:
    """True for https, or when the proxy header named by SECURE_PROXY_SSL_HEADER says so."""
    if scope.get("scheme") in ("https", "wss"):
        return True
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if not proxy_header:
        return False
    meta_name, expected = proxy_header
    # Django's META name "HTTP_X_FORWARDED_PROTO" is the header "x-forwarded-proto".
    name = meta_name.removeprefix("HTTP_").replace("_", "-").lower().encode("latin1")
    value = _header(scope, name)
    return value is not None and value.split(",", 1)[0].strip() == expected


def _policy_value(value: str | list[str] | tuple[str, ...]) -> str:
    return value if isinstance(value, str) else ",".join(value)


def security_headers(scope: Scope) -> Headers:
    """The security headers Django's middleware would add to a response to this request."""
    headers: Headers = []
    if getattr(settings, "SECURE_CONTENT_TYPE_NOSNIFF", True):
        headers.append((b"x-content-type-options", b"nosniff"))
    referrer_policy = getattr(settings, "SECURE_REFERRER_POLICY", "same-origin")
    if referrer_policy:
        headers.append((b"referrer-policy", _policy_value(referrer_policy).encode("latin1")))
    opener_policy = getattr(settings, "SECURE_CROSS_ORIGIN_OPENER_POLICY", "same-origin")
    if opener_policy:
        headers.append((b"cross-origin-opener-policy", opener_policy.encode("latin1")))
    frame_options = getattr(settings, "X_FRAME_OPTIONS", "DENY")
    if frame_options:
        headers.append((b"x-frame-options", frame_options.upper().encode("latin1")))
    hsts_seconds = getattr(settings, "SECURE_HSTS_SECONDS", 0)
    if hsts_seconds and is_secure(scope):
        value = f"max-age={hsts_seconds}"
        if getattr(settings, "SECURE_HSTS_INCLUDE_SUBDOMAINS", False):
            value += "; includeSubDomains"
        if getattr(settings, "SECURE_HSTS_PRELOAD", False):
            value += "; preload"
        headers.append((b"strict-transport-security", value.encode("latin1")))
    policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
    if policy:
        headers.append((b"content-security-policy", policy.encode("latin1")))
    return headers


def add_security_headers(scope: Scope, send: Send) -> Send:
    """Wrap ``send`` so the response start carries ``security_headers(scope)`` (headers the
    application already set win)."""

    async def send_with_headers(message: Message) -> None:
        if message.get("type") == "http.response.start":
            headers = list(message.get("headers", []))
            present = {name.lower() for name, _ in headers}
            headers += [item for item in security_headers(scope) if item[0] not in present]
            message = {**message, "headers": headers}
        await send(message)

    return send_with_headers


__all__ = [
    "add_security_headers",
    "allowed_hosts",
    "host_is_allowed",
    "is_secure",
    "request_host",
    "security_headers",
]
