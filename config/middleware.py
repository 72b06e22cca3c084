"""Django middleware of the project's own.

ContentSecurityPolicyMiddleware sends settings.CONTENT_SECURITY_POLICY on every response Django
makes (Django 5.2 has no CSP support of its own). The core's HTTP consumers send the same header
themselves (realtime.security.http). The pages load scripts and styles from /static/ only, so the
policy allows no inline script or style; the browser tests fail on any violation.

CacheUnavailableMiddleware answers 503 (with Retry-After) instead of a server error when a view
fails because the Redis behind Django's cache cannot be reached: the login limits live there, so
while Redis is away logins are refused (fail closed) with a message saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import redis.exceptions
from django.conf import settings
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger(__name__)


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response


class CacheUnavailableMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if not isinstance(exception, redis.exceptions.RedisError):
            return None
        logger.warning(
            "%s %s: the cache is unreachable: %s", request.method, request.path, exception
        )
        response = HttpResponse(
            "Service unavailable: this needs the cache, which cannot be reached right now. "
            "Please try again in a minute.\n",
            status=503,
            content_type="text/plain; charset=utf-8",
        )
        response["Retry-After"] = "30"
        return response
