"""The /news/ page and the follow/unfollow endpoints for bulletin groups.

GET  /news/?kind=bulletin&prefix=W1&group=WX   the page: latest items (filters optional), live
                                               afterwards through ws/news/ (static/js/news.js)
POST /news/follow/    group=WX                 follow a bulletin group (logged-in users)
POST /news/unfollow/  group=WX                 stop following it
Both POSTs redirect back to the page, or answer JSON {"group": "WX", "following": true} to
requests that accept application/json; a bad group is a 400 with the reason.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, JsonResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST

from aprs_news import protocol, services
from aprs_news.models import GENERAL_GROUP, NewsItem

PAGE_ITEMS = 100


@require_GET
def news_page(request: HttpRequest) -> HttpResponse:
    """Latest news, filtered by the query parameters (bad values are dropped, not fatal)."""
    filters = {"kind": "", "prefix": "", "group": ""}
    checks = {
        "kind": services.normalize_kind,
        "prefix": services.normalize_prefix,
        "group": services.normalize_group,
    }
    for name, check in checks.items():
        value = request.GET.get(name, "")
        if value:
            try:
                filters[name] = check(value)
            except ValueError:
                filters[name] = ""
    kind, others = filters.pop("kind"), filters
    bulletin_kinds = [k for k in services.BULLETIN_KINDS if kind in ("", k)]
    report_kinds = [k for k in services.REPORT_KINDS if kind in ("", k)]
    bulletins, reports = [], []
    if bulletin_kinds:
        bulletins = services.recent_items(bulletin_kinds, limit=PAGE_ITEMS, **others)
    if report_kinds:
        reports = services.recent_items(report_kinds, limit=PAGE_ITEMS, **others)
    filters = {"kind": kind, **others}
    known_groups = sorted(
        set(
            NewsItem.objects.exclude(group="")
            .order_by()
            .values_list("group", flat=True)
            .distinct()[:50]
        )
    )
    return render(
        request,
        "aprs_news/news.html",
        {
            "bulletins": bulletins,
            "reports": reports,
            "filters": filters,
            "kinds": NewsItem.Kind.choices,
            "followed": services.followed_groups(request.user),
            "known_groups": known_groups,
            "general_group": GENERAL_GROUP,
            "recent_limit": protocol.RECENT_MAX,
        },
    )


def _answer(request: HttpRequest, group: str, following: bool) -> HttpResponse:
    if "application/json" in request.headers.get("Accept", ""):
        return JsonResponse({"group": group, "following": following})
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = ""
    return redirect(target or "aprs_news:page")


@login_required
@require_POST
def follow_group(request: HttpRequest) -> HttpResponse:
    try:
        group = services.follow(request.user, request.POST.get("group", ""))
    except ValueError as error:
        return HttpResponseBadRequest(str(error), content_type="text/plain; charset=utf-8")
    return _answer(request, group, following=True)


@login_required
@require_POST
def unfollow_group(request: HttpRequest) -> HttpResponse:
    try:
        group = services.unfollow(request.user, request.POST.get("group", ""))
    except ValueError as error:
        return HttpResponseBadRequest(str(error), content_type="text/plain; charset=utf-8")
    return _answer(request, group, following=False)
