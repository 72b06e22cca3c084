"""Storing news, reading it back, and who follows which bulletin group: the one place that does.

    record_news(news, received) -> Recorded(item, created)
        Save a NewsPacket as a new NewsItem, or, when the same news (dedupe_key) was seen within
        the dedupe window, bump that item's seen_count/last_seen instead. A new bulletin or
        announcement notifies the users following its group (notifications.notify).
    prune_news(now) -> int            delete items not seen for the retention period (7 days)
    recent_items(kinds=(), prefix="", group="", limit=50) -> list[NewsItem]
    item_frame(item) -> dict          the ITEM shape of protocol.py, shared by page and socket
    follow(user, group) / unfollow(user, group) / followed_groups(user)

All functions are sync (ORM); async callers wrap them in database_sync_to_async.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F

from aprs_news import protocol
from aprs_news.models import GENERAL_GROUP, BulletinFollow, NewsItem
from aprs_news.parsing import NewsPacket
from notifications import notify

logger = logging.getLogger(__name__)

NOTIFICATION_VERB = "bulletin"
_GROUP_PATTERN = re.compile(r"^[A-Z0-9_-]{1,5}$")
_PREFIX_PATTERN = re.compile(r"^[A-Z0-9/-]{1,12}$")
BULLETIN_KINDS = (NewsItem.Kind.BULLETIN, NewsItem.Kind.ANNOUNCEMENT)
REPORT_KINDS = (NewsItem.Kind.STATUS, NewsItem.Kind.OBJECT, NewsItem.Kind.WEATHER)


def dedupe_window() -> timedelta:
    """Stations re-send a bulletin every few minutes for hours: the same text from the same station
    within this window of its last sighting is the same news (settings.APRS_DEDUPE_WINDOW_SECONDS,
    from SWITCHBOARD_APRS_DEDUPE_WINDOW_SECONDS, 12 hours by default)."""
    return timedelta(seconds=settings.APRS_DEDUPE_WINDOW_SECONDS)


def retention() -> timedelta:
    """How long news is kept after it was last seen (settings.APRS_RETENTION_DAYS, from
    SWITCHBOARD_APRS_RETENTION_DAYS, 7 days by default)."""
    return timedelta(days=settings.APRS_RETENTION_DAYS)


def prune_news(now: datetime) -> int:
    """Delete the news last seen before `now - retention()`; returns how many items went."""
    deleted, _ = NewsItem.objects.filter(last_seen__lt=now - retention()).delete()
    return deleted


@dataclass(frozen=True)
class Recorded:
    """What record_news did: `created` is False when an earlier item was seen again."""

    item: NewsItem
    created: bool


def record_news(news: NewsPacket, received: datetime) -> Recorded:
    """Save `news` (or count it as seen again) and notify followers of a new bulletin."""
    key = news.dedupe_key
    with transaction.atomic():
        earlier = (
            NewsItem.objects.select_for_update()
            .filter(dedupe_key=key, last_seen__gte=received - dedupe_window())
            .order_by("-last_seen")
            .first()
        )
        if earlier is not None:
            NewsItem.objects.filter(pk=earlier.pk).update(
                seen_count=F("seen_count") + 1, last_seen=max(received, earlier.last_seen)
            )
            earlier.refresh_from_db(fields=["seen_count", "last_seen"])
            return Recorded(earlier, created=False)
        item = NewsItem.objects.create(
            kind=news.kind,
            source=news.source,
            addressee=news.addressee,
            group=news.group,
            text=news.text,
            details=news.details,
            raw=news.raw,
            received=received,
            last_seen=received,
            dedupe_key=key,
        )
        if item.group:
            try:
                with transaction.atomic():  # a failing notify() must not lose the news
                    _notify_followers(item)
            except Exception:
                logger.exception("could not notify followers of %s", item.group)
    return Recorded(item, created=True)


def _notify_followers(item: NewsItem) -> None:
    follows = BulletinFollow.objects.filter(group=item.group)
    user_ids = list(follows.values_list("user_id", flat=True))
    if not user_ids:
        return
    label = "announcement" if item.kind == NewsItem.Kind.ANNOUNCEMENT else "bulletin"
    notify(
        user_ids,
        verb=NOTIFICATION_VERB,
        text=f"APRS {label} {item.addressee} from {item.source}: {item.text}",
        url=f"/news/?group={item.group}#news-{item.pk}",
    )


def normalize_group(group: str) -> str:
    """A followable group name in upper case, or ValueError naming the bad value."""
    cleaned = (group or "").strip().upper()
    if cleaned != GENERAL_GROUP and not _GROUP_PATTERN.match(cleaned):
        raise ValueError(
            f"bulletin group must be {GENERAL_GROUP} or 1-5 letters/digits (as in BLN1WX -> WX), "
            f"got {group!r}"
        )
    return cleaned


def normalize_prefix(prefix: str) -> str:
    """A callsign or region prefix in upper case ("" for none), or ValueError naming the value."""
    cleaned = (prefix or "").strip().upper()
    if cleaned and not _PREFIX_PATTERN.match(cleaned):
        raise ValueError(
            f"callsign prefix must be 1-12 letters, digits, '-' or '/', got {prefix!r}"
        )
    return cleaned


def normalize_kind(kind: str) -> str:
    """A NewsItem kind ("" for all kinds), or ValueError listing the kinds."""
    cleaned = (kind or "").strip().lower()
    if cleaned and cleaned not in NewsItem.Kind.values:
        raise ValueError(f"kind must be one of {NewsItem.Kind.values}, got {kind!r}")
    return cleaned


def recent_items(
    kinds: Collection[str] = (), prefix: str = "", group: str = "", limit: int = 50
) -> list[NewsItem]:
    """The latest items, newest first: of the given kinds (all when empty), from callsigns
    starting with `prefix` (a callsign or a region prefix such as "W1" or "DL"), in one bulletin
    group. `limit` is clamped to 1..protocol.RECENT_MAX."""
    items = NewsItem.objects.all()
    if kinds:
        items = items.filter(kind__in=list(kinds))
    if prefix:
        items = items.filter(source__startswith=prefix)
    if group:
        items = items.filter(group=group)
    return list(items.order_by("-received", "-id")[: max(1, min(limit, protocol.RECENT_MAX))])


def item_frame(item: NewsItem) -> dict[str, Any]:
    """The ITEM shape (protocol.py) of one news item."""
    return {
        "id": item.pk,
        "kind": item.kind,
        "source": item.source,
        "addressee": item.addressee,
        "group": item.group,
        "text": item.text,
        "details": item.details,
        "raw": item.raw,
        "received": item.received.isoformat(),
        "last_seen": item.last_seen.isoformat(),
        "seen_count": item.seen_count,
    }


def seen_frame(item: NewsItem) -> dict[str, Any]:
    """The news.seen frame telling pages an item was re-sent."""
    return {
        "type": protocol.FRAME_SEEN,
        "id": item.pk,
        "seen_count": item.seen_count,
        "last_seen": item.last_seen.isoformat(),
    }


def followed_groups(user: Any) -> list[str]:
    """The bulletin groups `user` follows (none for anonymous users)."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(BulletinFollow.objects.filter(user=user).values_list("group", flat=True))


def follow(user: Any, group: str) -> str:
    """Make `user` follow `group`; returns the normalized group name (ValueError if invalid)."""
    group = normalize_group(group)
    BulletinFollow.objects.get_or_create(user=user, group=group)
    return group


def unfollow(user: Any, group: str) -> str:
    """Stop `user` following `group`; returns the normalized group name (ValueError if invalid)."""
    group = normalize_group(group)
    BulletinFollow.objects.filter(user=user, group=group).delete()
    return group
