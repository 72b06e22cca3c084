"""Who is calling the notifications API and long-poll feed: the session cookie or a personal access
token sent as `Authorization: Bearer sbt_...`.

A request that carries a Bearer header is judged by the token alone (a wrong token is a 401 even if
a session cookie is present). CSRF protection applies to session-authenticated requests only:
a Bearer token is never sent by the browser on its own, so a cross-site page cannot make a request
that carries it, and CSRF (which defends against ambient credentials such as cookies) has nothing to
protect.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import CsrfViewMiddleware
from django.views.decorators.csrf import csrf_exempt

from notifications import protocol
from notifications.models import AccessToken
from realtime.db import database_sync_to_async


def bearer_token(authorization: str) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, or None if not that scheme."""
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return credentials.strip()


def error_response(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _csrf_failure(request: HttpRequest) -> HttpResponse | None:
    """Run Django's CSRF check as if the view were not exempt; a response means it failed."""
    check = CsrfViewMiddleware(lambda req: HttpResponse())
    check.process_request(request)
    return check.process_view(request, lambda req: HttpResponse(), (), {})


def api_login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Authenticate an API view by session or Bearer token; 401 JSON when neither succeeds.

    The wrapped view is CSRF-exempt for Bearer requests and CSRF-checked for session requests.
    """

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        header = request.headers.get("Authorization", "")
        token = bearer_token(header) if header else None
        if token is not None:
            user = AccessToken.objects.user_for(token)
            if user is None:
                return error_response(
                    401, protocol.ERROR_NOT_AUTHENTICATED, "invalid or revoked access token"
                )
            request.user = user
        else:
            if not request.user.is_authenticated:
                return error_response(
                    401, protocol.ERROR_NOT_AUTHENTICATED, "log in or send a Bearer token"
                )
            failure = _csrf_failure(request)
            if failure is not None:
                return error_response(
                    403, protocol.ERROR_CSRF_FAILED, "CSRF token missing or incorrect"
                )
        return view(request, *args, **kwargs)

    return csrf_exempt(wrapper)


class BearerTokenAuthMiddleware:
    """ASGI middleware for HTTP scopes: when the request carries `Authorization: Bearer <token>`,
    `scope["user"]` becomes the token's user (AnonymousUser for a bad token). Place it inside
    AuthMiddlewareStack so it overrides the session user only when a token is presented."""

    def __init__(self, inner) -> None:
        self.inner = inner

    async def __call__(self, scope, receive, send):
        token = None
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                token = bearer_token(value.decode("latin-1"))
                break
        if token is not None:
            user = await database_sync_to_async(AccessToken.objects.user_for)(token)
            scope = dict(scope, user=user or AnonymousUser())
        return await self.inner(scope, receive, send)
