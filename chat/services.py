"""Everything that changes or reads chat state, in one place: posting, editing, deleting, muting,
announcing, history and catch-up, read markers, and the broadcasts that follow a change.

The ORM functions are synchronous (consumers call them through `database_sync_to_async`, views
directly) and raise `ChatError(code, detail)` for anything the client should be told; the code is
one of the error codes in `chat.protocol`. A change is committed before it is broadcast, and a
broadcast is encoded to JSON once: the layer message carries the finished text, and every member
forwards it as it is.

Layer messages (see `chat.protocol`)::

    {"type": "chat.room_event", "room": "general", "seq": 13, "text": "{\"type\":\"message\",...}"}
    {"type": "chat.transient", "text": "{\"type\":\"typing\",...}"}

Room events go to the room's group and to the console group; `seq` lets a member that missed one
(its queue was full) fetch the gap with `events_between`.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, models, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from chat import protocol
from chat.models import AuditEntry, Message, Mute, ReadMarker, Room
from notifications import notify, notify_all
from realtime.text import unstorable_character

logger = logging.getLogger(__name__)

MENTION_RE = re.compile(r"(?<![\w@])@([\w.+-]*\w)")


class ChatError(Exception):
    """A request the server refuses; becomes {"type": "error", "code": code, "detail": detail}."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    def as_frame(self) -> dict:
        return {"type": protocol.ERROR, "code": self.code, "detail": self.detail}


@dataclass(frozen=True)
class RoomEvent:
    """A committed lasting change of a room, ready to broadcast: its seq and its frame."""

    room: str
    seq: int
    frame: dict


# --- Frames ------------------------------------------------------------------------------------


def message_frame(message: Message, room_slug: str) -> dict:
    """The `message` frame of a message as every client sees it."""
    return {
        "type": protocol.MESSAGE,
        "id": message.pk,
        "room": room_slug,
        "user": message.username,
        "text": message.text,
        "ts": message.created.isoformat(),
        "client_id": message.client_id,
        "kind": message.kind,
        "edited": message.edited is not None,
        "seq": message.seq,
    }


def edited_frame(message: Message, room_slug: str) -> dict:
    return {
        "type": protocol.EDITED,
        "id": message.pk,
        "room": room_slug,
        "text": message.text,
        "seq": message.event_seq,
    }


def deleted_frame(message: Message, room_slug: str) -> dict:
    return {
        "type": protocol.DELETED,
        "id": message.pk,
        "room": room_slug,
        "seq": message.event_seq,
    }


# --- Rooms and reading -------------------------------------------------------------------------


def get_room(slug: str) -> Room | None:
    return Room.objects.filter(slug=slug).first()


def visible_messages(room: Room) -> Any:
    return Message.objects.filter(room=room, deleted__isnull=True)


def history_page(room: Room, *, before: int | None = None, upto_seq: int | None = None) -> dict:
    """A `history` frame: the latest HISTORY_PAGE_SIZE visible messages (older than `before`,
    created at or before `upto_seq`), oldest first, and whether older ones exist."""
    query = visible_messages(room)
    if before is not None:
        query = query.filter(id__lt=before)
    if upto_seq is not None:
        query = query.filter(seq__lte=upto_seq)
    # seq and id grow together within a room; seq order walks the (room, seq) index.
    page = list(query.order_by("-seq")[: protocol.HISTORY_PAGE_SIZE + 1])
    has_more = len(page) > protocol.HISTORY_PAGE_SIZE
    page = page[: protocol.HISTORY_PAGE_SIZE]
    frame = {
        "type": protocol.HISTORY,
        "room": room.slug,
        "messages": [message_frame(m, room.slug) for m in reversed(page)],
        "has_more": has_more,
    }
    if before is not None:
        frame["before"] = before
    return frame


def replay_after(room: Room, after_id: int, upto_seq: int) -> list[dict]:
    """`history` frames holding every visible message newer than `after_id` (up to `upto_seq`),
    REPLAY_CHUNK_SIZE per frame, at least one frame."""
    query = visible_messages(room).filter(id__gt=after_id, seq__lte=upto_seq).order_by("seq")
    messages = [message_frame(m, room.slug) for m in query]
    chunks = [
        messages[i : i + protocol.REPLAY_CHUNK_SIZE]
        for i in range(0, len(messages), protocol.REPLAY_CHUNK_SIZE)
    ] or [[]]
    return [
        {
            "type": protocol.HISTORY,
            "room": room.slug,
            "messages": chunk,
            "has_more": False,
            "after": after_id,
        }
        for chunk in chunks
    ]


def events_between(room: Room, after_seq: int, upto_seq: int) -> list[dict]:
    """The frames of the room's lasting events numbered after `after_seq` up to `upto_seq`, in
    order, each showing the message as it is now: a message created in the range comes as a
    `message` frame (unless deleted since), an older one changed in the range as `edited` or
    `deleted`. Replaying them over what a client already has brings it up to date."""
    if upto_seq <= after_seq:
        return []
    created = Q(seq__gt=after_seq, seq__lte=upto_seq)
    changed = Q(event_seq__gt=after_seq, event_seq__lte=upto_seq)
    rows = Message.objects.filter(created | changed, room=room)
    ordered: list[tuple[int, dict]] = []
    for message in rows:
        if message.seq > after_seq:
            if message.deleted is None:
                ordered.append((message.seq, message_frame(message, room.slug)))
        elif message.deleted is not None:
            ordered.append((message.event_seq, deleted_frame(message, room.slug)))
        else:
            ordered.append((message.event_seq, edited_frame(message, room.slug)))
    ordered.sort(key=lambda pair: pair[0])
    return [frame for _, frame in ordered]


def last_read_id(user: Any, room: Room) -> int:
    if not user.is_authenticated:
        return 0
    marker = ReadMarker.objects.filter(user=user, room=room).values_list("last_read_id", flat=True)
    return marker.first() or 0


def mark_read(user: Any, room: Room, message_id: int) -> int:
    """Move the user's read marker in `room` forward to `message_id` (never back); returns it."""
    marker, _ = ReadMarker.objects.get_or_create(user=user, room=room)
    if message_id > marker.last_read_id:
        ReadMarker.objects.filter(pk=marker.pk, last_read_id__lt=message_id).update(
            last_read_id=message_id
        )
        return message_id
    return marker.last_read_id


def rooms_with_unread(user: Any) -> list[Room]:
    """Every room, each annotated with `unread`: visible messages by others after the user's
    read marker (0 for anonymous visitors)."""
    rooms = Room.objects.all()
    if not user.is_authenticated:
        return list(rooms.annotate(unread=Value(0)))
    marker = ReadMarker.objects.filter(user=user, room=OuterRef("pk")).values("last_read_id")[:1]
    rooms = rooms.annotate(read_upto=Coalesce(Subquery(marker), Value(0))).annotate(
        unread=Count(
            "messages",
            filter=Q(messages__id__gt=F("read_upto"), messages__deleted__isnull=True)
            & ~Q(messages__user=user),
        )
    )
    return list(rooms)


def messages_per_minute() -> int:
    """Messages posted in every room during the last 60 seconds."""
    return Message.objects.filter(created__gte=timezone.now() - timedelta(minutes=1)).count()


def recent_audit(limit: int = 50) -> list[dict]:
    entries = AuditEntry.objects.select_related("room").order_by("-id")[:limit]
    return [entry.as_frame() for entry in entries]


def recent_messages(limit: int = protocol.HISTORY_PAGE_SIZE) -> list[dict]:
    """The latest visible messages of every room, oldest first (the console's feed)."""
    rows = Message.objects.filter(deleted__isnull=True).select_related("room").order_by("-id")
    return [message_frame(m, m.room.slug) for m in reversed(rows[:limit])]


# --- Changing ----------------------------------------------------------------------------------


def check_storable(value: str, field: str) -> str:
    """`value`, or ChatError(invalid) when it holds a character no database can store (NUL, a
    lone surrogate; see realtime.text): refused before any query runs."""
    character = unstorable_character(value)
    if character is not None:
        raise ChatError(protocol.INVALID, f"'{field}' must not contain the character {character}.")
    return value


def check_text(text: Any) -> str:
    """The text of a message or announcement, or ChatError (invalid, empty, too_long)."""
    if not isinstance(text, str):
        raise ChatError(protocol.INVALID, "'text' must be a string.")
    check_storable(text, "text")
    if not text.strip():
        raise ChatError(protocol.EMPTY, "A message needs some text.")
    if len(text) > protocol.MAX_TEXT_LENGTH:
        raise ChatError(
            protocol.TOO_LONG,
            f"A message has at most {protocol.MAX_TEXT_LENGTH} characters, this one {len(text)}.",
        )
    return text


# Posting a message is the hot path of chat: under load the ORM's query building was most of its
# cost (1.5 ms of CPU a message, a third of it for the mute check alone). The two statements every
# message runs are therefore plain SQL on the models' own table and column names; everything else
# (the insert, every rare path) stays ORM.


def _sql_names(model: type[models.Model], *fields: str) -> list[str]:
    quote = connection.ops.quote_name
    return [quote(model._meta.db_table)] + [quote(model._meta.get_field(f).column) for f in fields]


def is_muted(user: Any, room: Room) -> bool:
    """Whether a mute in `room` or in every room stops `user` from posting now."""
    table, user_column, room_column, until = _sql_names(Mute, "user", "room", "until")
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {table} WHERE {user_column} = %s AND {until} > %s"
            f" AND ({room_column} = %s OR {room_column} IS NULL)",
            [user.pk, now, room.pk],
        )
        return cursor.fetchone() is not None


def active_mute(user: Any, room: Room) -> Mute | None:
    """The mute that ends last among those stopping `user` from posting in `room` now."""
    return (
        Mute.objects.filter(user=user, until__gt=timezone.now())
        .filter(Q(room=room) | Q(room__isnull=True))
        .order_by("-until")
        .first()
    )


def _next_seq(room: Room) -> int:
    """Take the room's next event number; call inside transaction.atomic(). The row update locks
    the room until commit, so numbers are handed out (and committed) in order, without gaps."""
    table, pk, seq = _sql_names(Room, "id", "seq")
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {seq} = {seq} + 1 WHERE {pk} = %s", [room.pk])
        cursor.execute(f"SELECT {seq} FROM {table} WHERE {pk} = %s", [room.pk])
        return cursor.fetchone()[0]


def post_message(
    user: Any, room: Room, text: Any, client_id: Any = "", kind: str = protocol.KIND_MESSAGE
) -> RoomEvent:
    """Save a message by `user` (checked: text, mute) and return its event to broadcast."""
    text = check_text(text)
    if not isinstance(client_id, str) or len(client_id) > protocol.MAX_CLIENT_ID_LENGTH:
        raise ChatError(
            protocol.INVALID,
            f"'client_id' must be a string of at most {protocol.MAX_CLIENT_ID_LENGTH} characters.",
        )
    check_storable(client_id, "client_id")
    if kind == protocol.KIND_MESSAGE and is_muted(user, room):
        mute = active_mute(user, room)
        if mute is not None:
            minutes = max(1, math.ceil((mute.until - timezone.now()).total_seconds() / 60))
            where = "here" if mute.room_id else "in every room"
            raise ChatError(
                protocol.MUTED,
                f"A moderator muted you {where} for {minutes} more minute{'s' * (minutes != 1)}.",
            )
    with transaction.atomic():
        seq = _next_seq(room)
        message = Message.objects.create(
            room=room,
            user=user,
            username=user.get_username(),
            text=text,
            client_id=client_id,
            kind=kind,
            seq=seq,
            event_seq=seq,
        )
    return RoomEvent(room.slug, seq, message_frame(message, room.slug))


def check_message_id(message_id: Any, field: str = "id") -> int:
    """A message id from a client frame, or ChatError(invalid)."""
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise ChatError(protocol.INVALID, f"'{field}' must be a message id (an integer).")
    return message_id


def _own_message(user: Any, room: Room | None, message_id: Any) -> Message:
    check_message_id(message_id)
    query = Message.objects.select_related("room").filter(pk=message_id, deleted__isnull=True)
    if room is not None:
        query = query.filter(room=room)
    message = query.first()
    if message is None:
        raise ChatError(protocol.NOT_FOUND, f"There is no message {message_id} here.")
    return message


def _within_edit_window(user: Any, message: Message, verb: str) -> None:
    if message.user_id != user.pk or message.kind != protocol.KIND_MESSAGE:
        raise ChatError(protocol.NOT_ALLOWED, f"You can only {verb} your own messages.")
    if timezone.now() - message.created > protocol.EDIT_WINDOW:
        minutes = int(protocol.EDIT_WINDOW.total_seconds() // 60)
        raise ChatError(
            protocol.NOT_ALLOWED, f"Messages can be {verb}ed for {minutes} minutes only."
        )


def edit_message(user: Any, room: Room, message_id: Any, text: Any) -> RoomEvent:
    """Change the text of the user's own message (within EDIT_WINDOW)."""
    text = check_text(text)
    message = _own_message(user, room, message_id)
    _within_edit_window(user, message, "edit")
    with transaction.atomic():
        seq = _next_seq(room)
        message.text = text
        message.edited = timezone.now()
        message.event_seq = seq
        message.save(update_fields=["text", "edited", "event_seq"])
    return RoomEvent(room.slug, seq, edited_frame(message, room.slug))


def delete_message(
    user: Any, message_id: Any, room: Room | None = None
) -> tuple[RoomEvent, AuditEntry | None]:
    """Delete a message: the author within EDIT_WINDOW, staff any message at any time. Returns the
    event and, when staff deleted what the author alone could not, the audit entry written."""
    message = _own_message(user, room, message_id)
    own = message.user_id == user.pk and message.kind == protocol.KIND_MESSAGE
    fresh = timezone.now() - message.created <= protocol.EDIT_WINDOW
    if not (own and fresh) and not user.is_staff:
        _within_edit_window(user, message, "delete")
    moderated = not (own and fresh)
    target_room = message.room
    with transaction.atomic():
        seq = _next_seq(target_room)
        message.deleted = timezone.now()
        message.event_seq = seq
        message.save(update_fields=["deleted", "event_seq"])
        entry = None
        if moderated:
            entry = AuditEntry.objects.create(
                actor=user,
                actor_name=user.get_username(),
                action=AuditEntry.ACTION_DELETE,
                room=target_room,
                target_user=message.username,
                message=message,
                detail=f"Deleted message {message.pk} by {message.username}: {message.text[:200]}",
            )
    return RoomEvent(target_room.slug, seq, deleted_frame(message, target_room.slug)), entry


def check_mute(username: Any, room_slug: Any, minutes: Any) -> None:
    """The fields of a mute request, or ChatError(invalid)."""
    if not isinstance(username, str) or not username:
        raise ChatError(protocol.INVALID, "'user' must be a username.")
    check_storable(username, "user")
    if room_slug is not None and not isinstance(room_slug, str):
        raise ChatError(protocol.INVALID, "'room' must be a room slug or null.")
    if room_slug is not None:
        check_storable(room_slug, "room")
    if isinstance(minutes, bool) or not isinstance(minutes, int):
        raise ChatError(protocol.INVALID, "'minutes' must be an integer.")
    if not 1 <= minutes <= protocol.MAX_MUTE_MINUTES:
        raise ChatError(
            protocol.INVALID, f"'minutes' must be between 1 and {protocol.MAX_MUTE_MINUTES}."
        )


def mute_user(actor: Any, username: Any, room_slug: Any, minutes: Any) -> AuditEntry:
    """Mute `username` in one room (or every room when `room_slug` is None) for `minutes`."""
    check_mute(username, room_slug, minutes)
    target = get_user_model().objects.filter(username=username).first()
    if target is None:
        raise ChatError(protocol.NOT_FOUND, f"There is no user {username!r}.")
    room = None
    if room_slug is not None:
        room = get_room(room_slug)
        if room is None:
            raise ChatError(protocol.NOT_FOUND, f"There is no room {room_slug!r}.")
    until = timezone.now() + timedelta(minutes=minutes)
    where = f"#{room.slug}" if room else "every room"
    with transaction.atomic():
        Mute.objects.create(user=target, room=room, until=until, created_by=actor)
        entry = AuditEntry.objects.create(
            actor=actor,
            actor_name=actor.get_username(),
            action=AuditEntry.ACTION_MUTE,
            room=room,
            target_user=target.get_username(),
            detail=f"Muted {target.get_username()} in {where} for {minutes} min",
        )
    return entry


def announce(actor: Any, text: Any) -> tuple[list[RoomEvent], AuditEntry]:
    """Post `text` as an announcement in every room, log it, and queue a notification for every
    user (notifications' worker fan-out)."""
    text = check_text(text)
    events = [
        post_message(actor, room, text, kind=protocol.KIND_ANNOUNCEMENT)
        for room in Room.objects.all()
    ]
    entry = AuditEntry.objects.create(
        actor=actor,
        actor_name=actor.get_username(),
        action=AuditEntry.ACTION_ANNOUNCE,
        detail=text[:1000],
    )
    notify_all(verb="announcement", text=text, url="/", actor=actor)
    return events, entry


def mentioned_usernames(text: str) -> set[str]:
    return set(MENTION_RE.findall(text))


def notify_mentions(author: Any, event: RoomEvent) -> int:
    """Notify every existing user named as @name in the message (not the author); returns how
    many were notified."""
    names = mentioned_usernames(event.frame["text"]) - {author.get_username()}
    if not names:
        return 0
    users = list(get_user_model().objects.filter(username__in=names, is_active=True))
    if not users:
        return 0
    notify(
        users,
        verb="mention",
        text=f"{author.get_username()} in #{event.room}: {event.frame['text']}",
        url=f"/rooms/{event.room}/#message-{event.frame['id']}",
        actor=author,
    )
    return len(users)


# --- Broadcasting ------------------------------------------------------------------------------


def room_event_message(event: RoomEvent) -> dict:
    """The channel-layer message of a room event, its frame encoded once."""
    return {
        "type": protocol.EVENT_ROOM,
        "room": event.room,
        "seq": event.seq,
        "text": protocol.encode(event.frame),
    }


async def broadcast_room_event(layer: Any, message: dict) -> None:
    """Send a room event message (see room_event_message) to the room's sockets and the console."""
    await layer.group_send(protocol.room_group(message["room"]), message)
    await layer.group_send(protocol.ADMIN_GROUP, message)


async def broadcast_transient(layer: Any, groups: list[str], frame: dict) -> None:
    """Send a passing frame (typing, presence), encoded once, to `groups`."""
    message = {"type": protocol.EVENT_TRANSIENT, "text": protocol.encode(frame)}
    for group in groups:
        await layer.group_send(group, message)


async def broadcast_audit(layer: Any, entry: AuditEntry) -> None:
    frame = {"type": protocol.AUDIT, "entries": [entry.as_frame()]}
    await broadcast_transient(layer, [protocol.ADMIN_GROUP], frame)
