"""Creating, reading and pushing notifications: the one place that changes them.

Public entry points (re-exported by the `notifications` package)::

    notify(users, *, verb, text, url="", actor=None) -> list[Notification]
        Save one notification per recipient (a user, a user id, or an iterable of either) and,
        once the transaction commits, push each to that user's live connections. Sync (ORM);
        from async code use `await anotify(...)`.
    notify_all(*, verb, text, url="", actor=None) -> str
        Notify every active user. Returns at once: once the transaction commits, the work goes
        to the worker channel `notifications-fanout`, which creates the notifications in batches
        of 500 (one bulk_create and one group_send per user each) and queues the next batch.
        Async: anotify_all.

Used by chat (mentions, admin announcements) and aprs_news (bulletins for followers). Reading:
`unread_count`, `mark_read`, `mark_all_read` push the new unread count to every open tab.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count

from notifications import protocol
from notifications.models import Notification
from realtime.db import database_sync_to_async
from realtime.layers import get_channel_layer
from realtime.text import unstorable_character

logger = logging.getLogger(__name__)

MAX_VERB_LENGTH = Notification._meta.get_field("verb").max_length
MAX_TEXT_LENGTH = Notification._meta.get_field("text").max_length
MAX_URL_LENGTH = Notification._meta.get_field("url").max_length


def _recipient_ids(users: Any) -> list[int]:
    """Primary keys of `users` (a user, an id, or an iterable of either), duplicates dropped."""
    if isinstance(users, int) or hasattr(users, "pk"):
        users = [users]
    ids: dict[int, None] = {}
    for user in users:
        pk = user if isinstance(user, int) else getattr(user, "pk", None)
        if not isinstance(pk, int):
            raise TypeError(f"notify() takes users or user ids, got {user!r}")
        ids[pk] = None
    return list(ids)


def _checked_fields(verb: str, text: str, url: str) -> tuple[str, str, str]:
    for name, value in (("verb", verb), ("text", text), ("url", url)):
        character = unstorable_character(value)
        if character is not None:
            raise ValueError(f"{name} must not contain the character {character}, got {value!r}")
    if not verb or len(verb) > MAX_VERB_LENGTH:
        raise ValueError(f"verb must be 1-{MAX_VERB_LENGTH} characters, got {verb!r}")
    if len(url) > MAX_URL_LENGTH:
        raise ValueError(f"url must be at most {MAX_URL_LENGTH} characters, got {len(url)}")
    # The url becomes a link in every client: only site paths and http(s) URLs, never
    # "javascript:" or a scheme-relative "//host".
    if url and not (
        (url.startswith("/") and not url.startswith("//"))
        or url.startswith(("https://", "http://"))
    ):
        raise ValueError(f"url must be a path starting with / or an http(s) URL, got {url!r}")
    if len(text) > MAX_TEXT_LENGTH:
        text = text[: MAX_TEXT_LENGTH - 1] + "…"
    return verb, text, url


def notify(
    users: Any, *, verb: str, text: str, url: str = "", actor: Any = None
) -> list[Notification]:
    """Save a notification for each recipient and push it live after commit (see module doc)."""
    verb, text, url = _checked_fields(verb, text, url)
    recipient_ids = _recipient_ids(users)
    if not recipient_ids:
        return []
    return _create(recipient_ids, actor=actor, verb=verb, text=text, url=url)


def _create(recipient_ids: list[int], **fields: Any) -> list[Notification]:
    """Save one notification with `fields` per recipient and push them live after commit.

    The recipients' user rows are locked until the transaction ends, in id order so that writers
    never deadlock. Notifications for one user are then numbered and committed in the same order,
    which the poll feed's cursor relies on: it hands out the highest id it delivered, so an id
    committed after a higher one would be skipped. (On PostgreSQL two transactions take ids in
    one order and may commit in the other; SQLite runs one writer at a time, and Django skips the
    lock there.) FOR NO KEY UPDATE: rows that merely reference a user (chat messages, other
    notifications) are not held up."""
    with transaction.atomic():
        _lock_recipients(recipient_ids)
        created = Notification.objects.bulk_create(
            [Notification(recipient_id=pk, **fields) for pk in recipient_ids]
        )
        transaction.on_commit(lambda: push_created(created))
    return created


def _lock_recipients(recipient_ids: list[int]) -> None:
    """Lock the recipients' user rows until the transaction ends (see _create)."""
    list(
        get_user_model()
        .objects.filter(pk__in=recipient_ids)
        .order_by("pk")
        .select_for_update(no_key=True)
        .values_list("pk", flat=True)
    )


async def anotify(
    users: Any, *, verb: str, text: str, url: str = "", actor: Any = None
) -> list[Notification]:
    """notify() for async callers (consumers)."""
    return await database_sync_to_async(notify)(users, verb=verb, text=text, url=url, actor=actor)


def _fanout_message(
    verb: str, text: str, url: str, actor: Any, fanout_id: str | None = None
) -> dict:
    verb, text, url = _checked_fields(verb, text, url)
    return {
        "type": protocol.EVENT_FANOUT,
        "fanout_id": fanout_id or uuid.uuid4().hex,
        "verb": verb,
        "text": text,
        "url": url,
        "actor_id": actor.pk if actor is not None else None,
        "after_user_id": 0,
    }


def notify_all(
    *, verb: str, text: str, url: str = "", actor: Any = None, fanout_id: str | None = None
) -> str:
    """Queue a notification for every active user but `actor` on the worker channel (once the
    current transaction commits, so a rolled-back announcement notifies nobody); returns the
    fan-out id. A caller that may queue the same fan-out twice (a retry) passes a stable
    `fanout_id`: users who already got it are skipped."""
    message = _fanout_message(verb, text, url, actor, fanout_id)
    transaction.on_commit(
        lambda: async_to_sync(get_channel_layer().send)(protocol.FANOUT_CHANNEL, message)
    )
    return message["fanout_id"]


async def anotify_all(*, verb: str, text: str, url: str = "", actor: Any = None) -> str:
    """notify_all() for async callers (consumers)."""
    message = _fanout_message(verb, text, url, actor)
    await get_channel_layer().send(protocol.FANOUT_CHANNEL, message)
    return message["fanout_id"]


def run_fanout_batch(message: dict) -> dict | None:
    """Notify the next batch of active users after `after_user_id`; return the message for the
    batch after it, or None when this was the last.

    A batch may run more than once: again after the worker that took it died (its lease ran
    out), or on two workers at once when one stalled past its lease. Each recipient still gets
    one notification: the ones already saved are read after taking the recipients' row locks
    (a second run waits for the first to commit, then sees its rows), and a unique constraint
    on (fanout_id, recipient) stands behind that. Every run then pushes what this batch saved
    and nobody pushed yet (`push_pending`), so recipients whose notifications were saved by a
    worker that died before its push still get them live."""
    try:
        fanout_id = str(message["fanout_id"])
        after_user_id = int(message["after_user_id"])
        verb, text, url = _checked_fields(message["verb"], message["text"], message["url"])
        actor_id = message.get("actor_id")
    except (KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"malformed fan-out message {message!r}: {exc}") from exc
    if not fanout_id:
        raise ValueError(f"malformed fan-out message {message!r}: empty fanout_id")
    users = get_user_model().objects.filter(is_active=True, pk__gt=after_user_id)
    if actor_id is not None:
        users = users.exclude(pk=actor_id)  # nobody is notified of what they did themselves
    user_ids = list(users.order_by("pk").values_list("pk", flat=True)[: protocol.FANOUT_BATCH_SIZE])
    if not user_ids:
        return None
    actor = get_user_model().objects.filter(pk=actor_id).first() if actor_id else None
    with transaction.atomic():
        _lock_recipients(user_ids)
        done = set(
            Notification.objects.filter(fanout_id=fanout_id, recipient_id__in=user_ids).values_list(
                "recipient_id", flat=True
            )
        )
        Notification.objects.bulk_create(
            [
                Notification(
                    recipient_id=pk,
                    actor=actor,
                    verb=verb,
                    text=text,
                    url=url,
                    fanout_id=fanout_id,
                    push_pending=True,
                )
                for pk in user_ids
                if pk not in done
            ]
        )
        transaction.on_commit(lambda: push_pending(fanout_id, user_ids))
    if len(user_ids) < protocol.FANOUT_BATCH_SIZE:
        return None
    return {**message, "after_user_id": user_ids[-1]}


def push_pending(fanout_id: str, user_ids: list[int]) -> int:
    """Push the fan-out's notifications for `user_ids` that were saved and not pushed yet, then
    mark them pushed; returns how many were pushed. Pushing comes first: a worker that dies
    between the two leaves them pending and the next run pushes them again (at least once; the
    browser shows a notification id once)."""
    pending = list(
        Notification.objects.filter(
            fanout_id=fanout_id, recipient_id__in=user_ids, push_pending=True
        ).select_related("actor")
    )
    if not pending or not push_created(pending):
        return 0
    Notification.objects.filter(pk__in=[n.pk for n in pending]).update(push_pending=False)
    return len(pending)


def notifications_after(user_id: int, after: int) -> tuple[list[dict[str, Any]], bool]:
    """The user's notifications with id > after, oldest first, at most POLL_MAX_NOTIFICATIONS;
    and whether more are waiting."""
    rows = list(
        Notification.objects.filter(recipient_id=user_id, id__gt=after)
        .select_related("actor")
        .order_by("id")[: protocol.POLL_MAX_NOTIFICATIONS + 1]
    )
    has_more = len(rows) > protocol.POLL_MAX_NOTIFICATIONS
    return [n.as_frame() for n in rows[: protocol.POLL_MAX_NOTIFICATIONS]], has_more


def unread_counts(user_ids: Iterable[int]) -> dict[int, int]:
    """Unread notifications per user, for many users in one query (0 for users with none)."""
    user_ids = list(user_ids)
    counts = dict.fromkeys(user_ids, 0)
    rows = (
        Notification.objects.filter(recipient_id__in=user_ids, read=False)
        .values("recipient_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts.update({row["recipient_id"]: row["n"] for row in rows})
    return counts


def unread_count(user_id: int) -> int:
    return Notification.objects.filter(recipient_id=user_id, read=False).count()


def mark_read(user_id: int, ids: Iterable[int]) -> int:
    """Mark the user's notifications `ids` read (others' ids are ignored); returns the unread
    count, which is also pushed to every live connection of the user."""
    Notification.objects.filter(recipient_id=user_id, id__in=list(ids), read=False).update(
        read=True
    )
    return _push_unread(user_id)


def mark_all_read(user_id: int) -> int:
    """Mark all of the user's notifications read; pushes and returns the unread count (0)."""
    Notification.objects.filter(recipient_id=user_id, read=False).update(read=True)
    return _push_unread(user_id)


def _push_unread(user_id: int) -> int:
    count = unread_count(user_id)
    event = {"type": protocol.EVENT_UNREAD, "count": count}
    transaction.on_commit(lambda: _group_send_all([(protocol.user_group(user_id), event)]))
    return count


def push_created(notifications: list[Notification]) -> bool:
    """Send each notification, with its recipient's new unread count, to the recipient's group;
    False when the layer failed (logged; see _group_send_all)."""
    if not notifications:
        return True
    counts = unread_counts({n.recipient_id for n in notifications})
    return _group_send_all(
        [
            (
                protocol.user_group(n.recipient_id),
                {
                    "type": protocol.EVENT_CREATED,
                    "notification": n.as_frame(),
                    "unread": counts[n.recipient_id],
                },
            )
            for n in notifications
        ]
    )


def _group_send_all(messages: list[tuple[str, dict]]) -> bool:
    """Send group messages from sync code in one trip to the event loop; whether they went. A
    failing layer is logged, not raised: the notifications are saved and clients catch up on
    their next read."""
    layer = get_channel_layer()
    if layer is None:
        return True

    async def send_all() -> None:
        for group, message in messages:
            await layer.group_send(group, message)

    try:
        async_to_sync(send_all)()
    except Exception:
        logger.exception("could not push %d notification events", len(messages))
        return False
    return True
