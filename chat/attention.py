"""What asks for a reader's attention, and what they chose to be told about.

Each reader chooses per room what notifies them (``NotifySetting``, one of
protocol.NOTIFY_LEVELS; default mentions and DMs) and, once for all rooms, how long a mention or
DM may stay unread before it is e-mailed (``MailSetting``, minutes of protocol.MAIL_DELAY_MINUTES;
0 never). The browser decides its desktop notifications from the level (static/js/attention.js);
the server applies it where the server decides:

- a room set to "nothing" gets no mention in the bell (`without_silenced`, used by
  chat.services.mention_recipients) and no e-mail;
- `message_posted` runs after a message is saved and broadcast: it notifies the bell of mentions
  and records a ``PendingMail`` for each mentioned reader, and each other member of a DM, who has
  an e-mail address and a delay; chat.mail sends what is still unread when it falls due.

Only someone who may read a room sets its level (`set_level` checks, whoever calls it).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from chat import access, protocol, services
from chat.models import MailSetting, Membership, NotifySetting, PendingMail, Room
from chat.services import ChatError, RoomEvent


def level(user: Any, room: Room) -> str:
    """What of `room` notifies `user` (the default for anonymous readers and unset rooms)."""
    if not getattr(user, "is_authenticated", False):
        return protocol.DEFAULT_NOTIFY_LEVEL
    found = NotifySetting.objects.filter(user=user, room=room).values_list("level", flat=True)
    return found.first() or protocol.DEFAULT_NOTIFY_LEVEL


def levels(user: Any, rooms: list[Room]) -> dict[int, str]:
    """`level` of each of `rooms` by room id, in one query."""
    chosen: dict[int, str] = {}
    if getattr(user, "is_authenticated", False) and rooms:
        rows = NotifySetting.objects.filter(user=user, room__in=[room.pk for room in rooms])
        chosen = dict(rows.values_list("room_id", "level"))
    return {room.pk: chosen.get(room.pk, protocol.DEFAULT_NOTIFY_LEVEL) for room in rooms}


def check_level(value: Any) -> str:
    """A notify level from a client, or ChatError(invalid)."""
    if value not in protocol.NOTIFY_LEVELS:
        raise ChatError(
            protocol.INVALID, f"'level' must be one of {', '.join(protocol.NOTIFY_LEVELS)}."
        )
    return value


def set_level(user: Any, room: Room, value: Any) -> str:
    """Set what of `room` notifies `user`; only a logged-in reader of the room may."""
    if not getattr(user, "is_authenticated", False):
        raise ChatError(protocol.LOGIN_REQUIRED, "Log in to choose what notifies you.")
    chosen = check_level(value)
    access.require_member(user, room)
    if chosen == protocol.DEFAULT_NOTIFY_LEVEL:
        NotifySetting.objects.filter(user=user, room=room).delete()
    else:
        NotifySetting.objects.update_or_create(user=user, room=room, defaults={"level": chosen})
    if chosen == protocol.NOTIFY_NOTHING:
        PendingMail.objects.filter(user=user, room=room, mailed__isnull=True).delete()
    return chosen


def without_silenced(users: list, room: Room) -> list:
    """`users` but those who set `room` to notify them of nothing."""
    if not users:
        return users
    silenced = set(
        NotifySetting.objects.filter(
            room=room, user__in=[user.pk for user in users], level=protocol.NOTIFY_NOTHING
        ).values_list("user_id", flat=True)
    )
    return [user for user in users if user.pk not in silenced]


def mail_delay(user: Any) -> int:
    """Minutes `user`'s unread mentions and DMs wait before they are e-mailed (0: never)."""
    found = MailSetting.objects.filter(user=user).values_list("delay_minutes", flat=True)
    delay = found.first()
    return protocol.DEFAULT_MAIL_DELAY_MINUTES if delay is None else delay


def check_mail_delay(value: Any) -> int:
    """A mail delay from a form (minutes, as a string or an int), or ChatError(invalid)."""
    try:
        minutes = int(value)
    except (TypeError, ValueError):
        minutes = -1
    if minutes not in protocol.MAIL_DELAY_MINUTES:
        choices = ", ".join(str(m) for m in protocol.MAIL_DELAY_MINUTES)
        raise ChatError(protocol.INVALID, f"The e-mail delay must be one of {choices} minutes.")
    return minutes


def set_mail_delay(user: Any, value: Any) -> int:
    """Set `user`'s e-mail delay. Turning e-mail off drops what was waiting to be mailed; a new
    delay applies to messages posted from now on."""
    if not getattr(user, "is_authenticated", False):
        raise ChatError(protocol.LOGIN_REQUIRED, "Log in to choose your e-mail.")
    minutes = check_mail_delay(value)
    with transaction.atomic():
        MailSetting.objects.update_or_create(user=user, defaults={"delay_minutes": minutes})
        if minutes == 0:
            PendingMail.objects.filter(user=user, mailed__isnull=True).delete()
    return minutes


def message_posted(author: Any, room: Room, event: RoomEvent) -> None:
    """After a message of `room` is saved and broadcast: the bell notification of its mentions,
    and a pending e-mail for each reader it asks the attention of (see the module docstring).
    The consumer calls this only for a message with a mention or in a DM."""
    access.require_member(author, room)
    mentioned = services.mention_recipients(author, room, event.frame["text"])
    services.notify_mentioned(author, event, mentioned)
    if room.kind == protocol.ROOM_DM:
        others = (
            get_user_model()
            .objects.filter(
                is_active=True,
                chat_memberships__room=room,
                chat_memberships__state=Membership.STATE_JOINED,
            )
            .exclude(pk=author.pk)
        )
        record_pending_mail(room, event, without_silenced(list(others), room))
    else:
        record_pending_mail(room, event, mentioned)


def record_pending_mail(room: Room, event: RoomEvent, readers: list) -> int:
    """A ``PendingMail`` for each of `readers` (allowed to be told) with an e-mail address and a
    delay, due after their delay; returns how many were recorded."""
    readers = [reader for reader in readers if reader.email]
    if not readers:
        return 0
    delays = dict(
        MailSetting.objects.filter(user__in=[r.pk for r in readers]).values_list(
            "user_id", "delay_minutes"
        )
    )
    now = timezone.now()
    reason = PendingMail.REASON_DM if room.kind == protocol.ROOM_DM else PendingMail.REASON_MENTION
    rows = [
        PendingMail(
            user_id=reader.pk,
            message_id=event.frame["id"],
            room=room,
            reason=reason,
            due=now + timedelta(minutes=delay),
        )
        for reader in readers
        if (delay := delays.get(reader.pk, protocol.DEFAULT_MAIL_DELAY_MINUTES)) > 0
    ]
    PendingMail.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)
