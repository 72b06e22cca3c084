"""Django middleware of the project's own.

ContentSecurityPolicyMiddleware sends settings.CONTENT_SECURITY_POLICY on every response Django
makes (Django 5.2 has no CSP support of its own). The core's HTTP consumers send the same header
themselves (realtime.security.http). The pages load scripts and styles from /static/ only, so the
policy allows no inline script or style; the browser tests fail on any violation.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = getattr(settings, "CONTENT_SECURITY_POLICY", "")
        if policy and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = policy
        return response
