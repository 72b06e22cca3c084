"""Notification pages, the JSON API, and the personal access token settings page.

    GET  /notifications/                      the notifications page (HTML, login required)
    POST /notifications/read/                 form: mark `ids` (or `all`) read, back to the page
    GET  /api/notifications/?unread=1&before=<id>&limit=<n>
         -> {"notifications": [...], "unread": N, "next_before": <id> | null}
    POST /api/notifications/read/  JSON {"ids": [...]} or {"all": true} -> {"unread": N}
    GET/POST /settings/tokens/                list / create tokens (the raw token is shown once)
    POST /settings/tokens/<id>/revoke/        delete a token

The API accepts the session cookie (CSRF-checked on POST) or `Authorization: Bearer <token>`.
"""

from __future__ import annotations

import json

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from notifications import protocol, services
from notifications.authentication import api_login_required, error_response
from notifications.models import AccessToken, Notification
from realtime.text import unstorable_character

TOKEN_NAME_MAX = AccessToken._meta.get_field("name").max_length


class BadParameter(ValueError):
    """A query or body parameter the API cannot use; its message names the parameter."""


def _positive_integer(value: str | None, name: str) -> int | None:
    """The parameter as an integer from 1 up, None when absent; BadParameter otherwise."""
    if value is None or value == "":
        return None
    number = protocol.parse_id(value)
    if not number:
        raise BadParameter(f"{name} must be a positive integer, got {value!r}")
    return number


def _flag(value: str | None, name: str) -> bool:
    if value in (None, "", "0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise BadParameter(f"{name} must be 1 or 0, got {value!r}")


@never_cache
@require_GET
@api_login_required
def api_list(request: HttpRequest) -> HttpResponse:
    """One page of the user's notifications, newest first; `before` pages to older ones."""
    try:
        unread_only = _flag(request.GET.get("unread"), "unread")
        before = _positive_integer(request.GET.get("before"), "before")
        limit = _positive_integer(request.GET.get("limit"), "limit") or protocol.API_PAGE_SIZE
    except BadParameter as exc:
        return error_response(400, protocol.ERROR_BAD_PARAMETER, str(exc))
    limit = min(limit, protocol.API_MAX_PAGE_SIZE)
    rows = Notification.objects.filter(recipient=request.user).select_related("actor")
    if unread_only:
        rows = rows.filter(read=False)
    if before is not None:
        rows = rows.filter(id__lt=before)
    page = list(rows.order_by("-id")[: limit + 1])
    more = len(page) > limit
    page = page[:limit]
    return JsonResponse(
        {
            "notifications": [n.as_frame() for n in page],
            "unread": services.unread_count(request.user.pk),
            "next_before": page[-1].id if more else None,
        }
    )


@require_POST
@api_login_required
def api_mark_read(request: HttpRequest) -> HttpResponse:
    """Mark notifications read: JSON `{"ids": [...]}` or `{"all": true}`; answers the unread
    count."""
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError):
        return error_response(400, protocol.ERROR_MALFORMED, "the body must be a JSON object")
    if not isinstance(body, dict):
        return error_response(400, protocol.ERROR_MALFORMED, "the body must be a JSON object")
    if body.get("all") is True:
        count = services.mark_all_read(request.user.pk)
    else:
        try:
            ids = protocol.parse_ids(body.get("ids"))
        except ValueError as exc:
            return error_response(400, protocol.ERROR_BAD_PARAMETER, str(exc))
        count = services.mark_read(request.user.pk, ids)
    return JsonResponse({"unread": count})


@login_required
def notification_list(request: HttpRequest) -> HttpResponse:
    """The notifications page: all of the user's notifications, 50 to a page."""
    rows = Notification.objects.filter(recipient=request.user).select_related("actor")
    page = Paginator(rows.order_by("-id"), protocol.API_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(
        request,
        "notifications/list.html",
        {"page": page, "unread": services.unread_count(request.user.pk)},
    )


@require_POST
@login_required
def mark_read_form(request: HttpRequest) -> HttpResponse:
    """The page's buttons: `all=1` marks everything read, else the posted `ids`."""
    if request.POST.get("all"):
        services.mark_all_read(request.user.pk)
    else:
        ids = [protocol.parse_id(i) for i in request.POST.getlist("ids")]
        valid = [i for i in ids if i is not None]
        services.mark_read(request.user.pk, valid[: protocol.MAX_IDS_PER_READ])
    page = protocol.parse_id(request.POST.get("page", ""))
    return redirect(f"/notifications/?page={page}" if page else "/notifications/")


@login_required
def token_settings(request: HttpRequest) -> HttpResponse:
    """List the user's access tokens and create new ones; a new raw token is shown only here,
    only in this response."""
    new_token = None
    error = ""
    if request.method == "POST":
        name = request.POST.get("name", "").strip()
        if not name or len(name) > TOKEN_NAME_MAX:
            error = f"Give the token a name of 1 to {TOKEN_NAME_MAX} characters."
        elif (character := unstorable_character(name)) is not None:
            error = f"A token name cannot contain the character {character}."
        else:
            _, new_token = AccessToken.issue(request.user, name)
    tokens = AccessToken.objects.filter(user=request.user)
    response = render(
        request,
        "notifications/tokens.html",
        {"tokens": tokens, "new_token": new_token, "error": error},
        status=400 if error else 200,
    )
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def revoke_token(request: HttpRequest, token_id: int) -> HttpResponse:
    token = get_object_or_404(AccessToken, pk=token_id, user=request.user)
    token.delete()
    messages.success(request, f"Token “{token.name}” revoked.")
    return redirect("notifications:tokens")
