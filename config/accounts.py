"""django-allauth adapter: what a failed-login limit counts against.

allauth counts failed logins per client IP and per *key*; its key is the typed login plus the
site's domain, which Django takes from the request's Host header (port included). That let one
account be guessed 5 times per host name it answers to (127.0.0.1:8000, localhost:8000, ...) and 5
times more under its e-mail address. Here the key is the account the login names, whichever way
it is written, and the typed text only when it names no account. See docs/security.md.
"""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.contrib.auth import get_user_model
from django.db.models import Q
from django.http import HttpRequest


class AccountAdapter(DefaultAccountAdapter):
    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        login = str(credentials.get("email") or credentials.get("username") or "").strip()
        user_model = get_user_model()
        matches = list(
            user_model._default_manager.filter(
                Q(**{f"{user_model.USERNAME_FIELD}__iexact": login}) | Q(email__iexact=login)
            ).values_list("pk", flat=True)[:2]
        )
        if len(matches) == 1:
            return f"account:{matches[0]}"
        return f"login:{login.lower()}"
