"""E-mail about mentions and DMs still unread after the reader's delay: one sweep, run often.

chat.attention records a ``PendingMail`` per reader when a message asks for their attention,
``due`` after their delay. `sweep()` sends what has fallen due, at most one e-mail per reader per
sweep listing every such message, through Django's e-mail backend (settings.EMAIL_BACKEND:
the console on `make run`, DJANGO_EMAIL_URL in production). Who runs it: `embedded_sweeper`,
an embedded service of `manage.py serve` (settings.REALTIME_EMBEDDED_SERVICES), and
`manage.py send_unread_mail` (once, or ``--every`` seconds) where the web processes run with
``--no-services``. Several sweepers at once are safe.

Once and only once, across restarts and concurrent sweeps:

1. one UPDATE takes every due row nobody took, stamping it with this sweep's token and
   ``mailed`` (committed before anything is sent, so no other sweep, and no sweep after a
   restart, takes it again);
2. each taken row is checked again now: the message still exists, the reader has not read it
   (their read marker is below it), may still read the room, has not silenced the room, still
   has an address and a delay; rows that fail are deleted, never mailed;
3. one e-mail per reader; if sending fails the reader's rows are given back (token and mark
   cleared) for the next sweep. A process killed between taking and sending loses that e-mail
   rather than ever sending one twice.

Mailed rows are kept for KEEP_MAILED, then deleted by a later sweep.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import defaultdict
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core import mail
from django.utils import timezone

from chat import access, attention, protocol
from chat.models import PendingMail, ReadMarker
from realtime.db import database_sync_to_async
from realtime.types import ASGIApp

logger = logging.getLogger(__name__)

KEEP_MAILED = timedelta(days=7)
EXCERPT_LENGTH = 300  # characters of a message an e-mail quotes
MAX_LISTED = 20  # messages one e-mail lists; it counts the rest


def sweep(now: Any = None) -> int:
    """Send the e-mails that have fallen due (see the module docstring); returns how many."""
    now = now or timezone.now()
    PendingMail.objects.filter(mailed__lt=now - KEEP_MAILED).delete()
    token = uuid.uuid4().hex
    taken = PendingMail.objects.filter(mailed__isnull=True, due__lte=now).update(
        claim=token, mailed=now
    )
    if not taken:
        return 0
    rows = PendingMail.objects.filter(claim=token).select_related("user", "room", "message")
    by_reader: dict[int, list[PendingMail]] = defaultdict(list)
    for row in rows.order_by("user_id", "message_id"):
        by_reader[row.user_id].append(row)
    sent = 0
    connection = mail.get_connection()
    for reader_rows in by_reader.values():
        wanted = [row for row in reader_rows if _still_wanted(row)]
        PendingMail.objects.filter(pk__in=[r.pk for r in reader_rows if r not in wanted]).delete()
        if not wanted:
            continue
        try:
            _message(wanted, connection).send()
        except Exception:
            logger.exception("could not e-mail %s about %d messages", wanted[0].user, len(wanted))
            PendingMail.objects.filter(pk__in=[r.pk for r in wanted]).update(claim="", mailed=None)
            continue
        sent += 1
    return sent


def _still_wanted(row: PendingMail) -> bool:
    """Whether the reader should still be e-mailed about the row's message, checked now."""
    reader, room, message = row.user, row.room, row.message
    if message.deleted is not None or not reader.is_active or not reader.email:
        return False
    if not access.can_read(reader, room):
        return False
    if attention.level(reader, room) == protocol.NOTIFY_NOTHING:
        return False
    if attention.mail_delay(reader) == 0:
        return False
    marker = ReadMarker.objects.filter(user=reader, room=room).values_list(
        "last_read_id", flat=True
    )
    return (marker.first() or 0) < message.pk


def site_url() -> str:
    """The site's address for links in e-mails (settings.SITE_URL, no trailing slash)."""
    return settings.SITE_URL.rstrip("/")


def _room_name(row: PendingMail) -> str:
    room = row.room
    if room.is_public:
        return f"#{room.slug}"
    return room.display_name


def _message(rows: list[PendingMail], connection: Any) -> mail.EmailMessage:
    """The e-mail telling one reader about `rows` (their messages, oldest first)."""
    reader = rows[0].user
    first = rows[0]
    if len(rows) == 1:
        what = "sent you a message" if first.reason == PendingMail.REASON_DM else "mentioned you"
        subject = f"{first.message.username} {what} in {_room_name(first)}"
    else:
        subject = f"{len(rows)} unread messages for you on Switchboard"
    lines = [f"Hello {reader.get_username()},", "", "You have not read these yet:", ""]
    for row in rows[:MAX_LISTED]:
        text = row.message.text
        if len(text) > EXCERPT_LENGTH:
            text = text[: EXCERPT_LENGTH - 1] + "…"
        when = timezone.localtime(row.message.created).strftime("%Y-%m-%d %H:%M %Z")
        lines += [
            f"{row.message.username} in {_room_name(row)}, {when}:",
            *(f"  {line}" for line in text.splitlines() or [""]),
            f"  {site_url()}{row.room.get_absolute_url()}#message-{row.message.pk}",
            "",
        ]
    if len(rows) > MAX_LISTED:
        lines += [f"…and {len(rows) - MAX_LISTED} more.", ""]
    lines += [
        "Choose what you are e-mailed about, and after how long:",
        f"{site_url()}/chat/notifications/",
    ]
    return mail.EmailMessage(
        subject=subject,
        body="\n".join(lines),
        to=[reader.email],
        connection=connection,
    )


async def embedded_sweeper(application: ASGIApp) -> None:
    """The sweep `manage.py serve` runs beside Daphne, every settings.CHAT_MAIL_SWEEP_SECONDS
    (0: never) until cancelled. A failing sweep is logged and tried again next time."""
    interval = settings.CHAT_MAIL_SWEEP_SECONDS
    if interval <= 0:
        return
    while True:
        try:
            await database_sync_to_async(sweep)()
        except Exception:
            logger.exception("the unread-mail sweep failed")
        await asyncio.sleep(interval)
