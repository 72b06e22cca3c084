"""Everything that changes or reads chat state, in one place: posting, editing, deleting, muting,
announcing, history and catch-up, read markers, and the checks on what a client sends.

The ORM functions are synchronous (consumers call them through `database_sync_to_async`, views
directly) and raise `ChatError(code, detail)` for anything the client should be told; the code is
one of the error codes in `chat.protocol`. A change returns the `RoomEvent` to broadcast once it
is committed (`chat.broadcast` sends it); `seq` numbers a room's events without gaps, so a member
that missed one fetches the gap with `events_between`.

Every function that reads or changes one room checks first, itself, that the user may read it
(`chat.access.require_member`: public rooms, or a private room / DM the user joined); lists of
rooms start from `chat.access.readable_rooms`. Membership itself changes in `chat.membership`.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection, models, transaction
from django.db.models import Count, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from chat import access, attachments, protocol
from chat.models import (
    AuditEntry,
    MemberEvent,
    Membership,
    Message,
    Mute,
    Reaction,
    ReadMarker,
    Room,
)
from notifications import notify, notify_all
from realtime.generic.frames import FrameError
from realtime.rows import Columns
from realtime.text import unstorable_character

logger = logging.getLogger(__name__)

MENTION_RE = re.compile(r"(?<![\w@])@([\w.+-]*\w)")


class ChatError(FrameError):
    """A request the server refuses; the socket answers {"type": "error", "code", "detail"}."""


@dataclass(frozen=True)
class RoomEvent:
    """A committed lasting change of a room, ready to broadcast: its seq and its frame."""

    room: str
    seq: int
    frame: dict
    private: bool = False  # a private room's or DM's: not for every console (chat.protocol)
    revoke: int | None = None  # a user who lost access with it: their sockets close
    # Set when the change was already committed earlier (a retried post): nothing is broadcast
    # again, and these frames answer the sender alone.
    echo: tuple[dict, ...] = ()


def room_event(room: Room, seq: int, frame: dict, revoke: int | None = None) -> RoomEvent:
    return RoomEvent(room.slug, seq, frame, private=not room.is_public, revoke=revoke)


# --- Frames ------------------------------------------------------------------------------------


def quote(original: Message) -> dict:
    """What a reply shows of the message it answers (no text once the original is deleted)."""
    deleted = original.deleted is not None
    return {
        "id": original.pk,
        "user": original.username,
        "text": "" if deleted else original.text[: protocol.QUOTE_LENGTH],
        "deleted": deleted,
    }


def reaction_summary(rows: Any) -> list[dict]:
    """Reactions as frames carry them: per emoji (in REACTION_EMOJI order), who, oldest first."""
    users: dict[str, list[str]] = {}
    for row in rows:
        users.setdefault(row.emoji, []).append(row.username)
    return [
        {"emoji": emoji, "users": users[emoji]}
        for emoji in protocol.REACTION_EMOJI
        if emoji in users
    ]


def message_frame(
    message: Message,
    room_slug: str,
    reactions: list[dict] | None = None,
    files: list[dict] | None = None,
) -> dict:
    """The `message` frame of a message as every client sees it (`reactions` as
    reaction_summary gives them, a new message has none; `files` as chat.attachments lists
    them). Load `reply_to` with the message."""
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
        "reply_to": quote(message.reply_to) if message.reply_to_id else None,
        "reactions": reactions or [],
        "attachments": files or [],
    }


def message_frames(rows: list[Message], room_slug: str | None = None) -> list[dict]:
    """The `message` frames of `rows` (of the room `room_slug`; None: each its own room, loaded
    with it), their reactions read in one query and their attachments in another."""
    by_message: dict[int, list[ReactionRow]] = {}
    if rows:
        table, message, username, emoji, pk = _sql_names(
            Reaction, "message", "username", "emoji", "id"
        )
        ids = [m.pk for m in rows]
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {message}, {username}, {emoji} FROM {table} "
                f"WHERE {message} IN ({', '.join(['%s'] * len(ids))}) ORDER BY {pk}",
                ids,
            )
            for message_id, name, symbol in cursor.fetchall():
                by_message.setdefault(message_id, []).append(ReactionRow(name, symbol))
    files = attachments.entries_for(m.pk for m in rows)
    return [
        message_frame(
            m,
            room_slug or m.room.slug,
            reaction_summary(by_message.get(m.pk, ())),
            files.get(m.pk),
        )
        for m in rows
    ]


class ReactionRow(NamedTuple):
    """What `reaction_summary` reads of a reaction."""

    username: str
    emoji: str


def reactions_frame(message: Message, room_slug: str, reactions: list[dict]) -> dict:
    return {
        "type": protocol.REACTIONS,
        "id": message.pk,
        "room": room_slug,
        "reactions": reactions,
        "seq": message.reactions_seq,
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


def room_for_reader(slug: str, user: Any) -> Room | None:
    """`get_room` and the reader's `last_read_id` in one statement: the room, with a `last_read`
    attribute (0 for an anonymous reader or one without a marker), or None. Plain SQL: building
    the same query with the ORM cost ten times the query itself (every socket's connect runs it).
    """
    quote = connection.ops.quote_name
    rooms = Columns.of(Room)
    sql = (
        f"SELECT {rooms.select('r')}, COALESCE((SELECT m.{quote('last_read_id')} "
        f"FROM {quote(ReadMarker._meta.db_table)} m "
        f"WHERE m.{quote('user_id')} = %s AND m.{quote('room_id')} = r.{quote('id')}), 0) "
        f"AS {quote('last_read')} "
        f"FROM {rooms.table} r WHERE r.{quote('slug')} = %s"
    )
    user_id = user.pk if user.is_authenticated else None
    with connection.cursor() as cursor:
        cursor.execute(sql, [user_id, slug])
        row = cursor.fetchone()
    if row is None:
        return None
    room = rooms.instance(row)
    room.last_read = row[-1]
    return room


def history_page(
    user: Any, room: Room, *, before: int | None = None, upto_seq: int | None = None
) -> dict:
    """A `history` frame: the latest HISTORY_PAGE_SIZE visible messages (older than `before`,
    created at or before `upto_seq`), oldest first, and whether older ones exist."""
    access.require_member(user, room)
    # seq and id grow together within a room; seq order walks the (room, seq) index.
    page = visible_rows(
        room, before=before, upto_seq=upto_seq, limit=protocol.HISTORY_PAGE_SIZE + 1, newest=True
    )
    has_more = len(page) > protocol.HISTORY_PAGE_SIZE
    page = page[: protocol.HISTORY_PAGE_SIZE]
    frame = {
        "type": protocol.HISTORY,
        "room": room.slug,
        "messages": message_frames(list(reversed(page)), room.slug),
        "has_more": has_more,
    }
    if before is not None:
        frame["before"] = before
    return frame


def replay_after(user: Any, room: Room, after_id: int, upto_seq: int) -> dict | None:
    """A `history` frame holding every visible message newer than `after_id` (up to `upto_seq`),
    or None when more than REPLAY_MAX_MESSAGES are missing: a client that far behind starts over
    from the latest page instead (one socket must not pull a whole room into memory)."""
    access.require_member(user, room)
    rows = visible_rows(
        room, after=after_id, upto_seq=upto_seq, limit=protocol.REPLAY_MAX_MESSAGES + 1
    )
    if len(rows) > protocol.REPLAY_MAX_MESSAGES:
        return None
    return {
        "type": protocol.HISTORY,
        "room": room.slug,
        "messages": message_frames(rows, room.slug),
        "has_more": False,
        "after": after_id,
    }


def visible_rows(
    room: Room,
    *,
    before: int | None = None,
    after: int | None = None,
    upto_seq: int | None = None,
    limit: int,
    newest: bool = False,
) -> list[Message]:
    """The room's messages that are not deleted, with ids below `before` and above `after`,
    created at or before `upto_seq`, in `seq` order (the newest first with `newest`), at most
    `limit`, each with the message it answers loaded (what `quote` reads of it). One plain statement: the ORM took
    longer to build it than the database to answer it, for every page of history."""
    messages = Columns.of(Message)
    quoted = Columns.of(Message, "id", "username", "text", "deleted")
    quote = connection.ops.quote_name
    room_id, deleted, seq, pk, reply_to = (
        quote(Message._meta.get_field(name).column)
        for name in ("room", "deleted", "seq", "id", "reply_to")
    )
    where, params = [f"m.{room_id} = %s", f"m.{deleted} IS NULL"], [room.pk]
    for condition, value in (
        (f"m.{pk} < %s", before),
        (f"m.{pk} > %s", after),
        (f"m.{seq} <= %s", upto_seq),
    ):
        if value is not None:
            where.append(condition)
            params.append(value)
    sql = (
        f"SELECT {messages.select('m')}, {quoted.select('q')} FROM {messages.table} m "
        f"LEFT OUTER JOIN {messages.table} q ON q.{pk} = m.{reply_to} "
        f"WHERE {' AND '.join(where)} ORDER BY m.{seq} {'DESC' if newest else 'ASC'} LIMIT %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, limit])
        rows = cursor.fetchall()
    found = []
    for row in rows:
        message = messages.instance(row)
        if message.reply_to_id is not None:
            answered = row[len(messages)] is not None
            message._state.fields_cache["reply_to"] = (
                quoted.instance(row, len(messages)) if answered else None
            )
        found.append(message)
    return found


def events_between(user: Any, room: Room, after_seq: int, upto_seq: int) -> list[dict]:
    """The frames of the room's lasting events numbered after `after_seq` up to `upto_seq`, in
    order, each showing the message as it is now: a message created in the range comes as a
    `message` frame (unless deleted since), an older one changed in the range as `edited` or
    `deleted`, a membership change as `member`. Replaying them over what a client already has
    brings it up to date. Callers bound the range (REPLAY_MAX_EVENTS for a reconnecting client)."""
    access.require_member(user, room)
    return catch_up_events(room, after_seq, upto_seq)


def catch_up_events(room: Room, after_seq: int, upto_seq: int) -> list[dict]:
    """`events_between` without the membership check, for `chat.delivery`'s catch-up of sockets
    that were admitted on connect (one read shared by many sockets; a socket whose user loses
    access is closed by the `chat.access_lost` event)."""
    if upto_seq <= after_seq:
        return []
    created = Q(seq__gt=after_seq, seq__lte=upto_seq)
    changed = Q(event_seq__gt=after_seq, event_seq__lte=upto_seq)
    reacted = Q(reactions_seq__gt=after_seq, reactions_seq__lte=upto_seq)
    rows = list(
        Message.objects.filter(created | changed | reacted, room=room).select_related("reply_to")
    )
    new = [m for m in rows if m.seq > after_seq and m.deleted is None]
    ordered: list[tuple[int, dict]] = [
        (frame["seq"], frame) for frame in message_frames(new, room.slug)
    ]
    older = [m for m in rows if m.seq <= after_seq]
    reactions: dict[int, list[Reaction]] = {}
    for reaction in Reaction.objects.filter(
        message__in=[m.pk for m in older if m.deleted is None and m.reactions_seq > after_seq]
    ).order_by("id"):
        reactions.setdefault(reaction.message_id, []).append(reaction)
    for message in older:
        if message.deleted is not None:
            if after_seq < message.event_seq <= upto_seq:
                ordered.append((message.event_seq, deleted_frame(message, room.slug)))
            continue
        if after_seq < message.event_seq <= upto_seq:
            ordered.append((message.event_seq, edited_frame(message, room.slug)))
        if after_seq < message.reactions_seq <= upto_seq:
            summary = reaction_summary(reactions.get(message.pk, ()))
            ordered.append((message.reactions_seq, reactions_frame(message, room.slug, summary)))
    if not room.is_public:
        changes = MemberEvent.objects.filter(room=room, seq__gt=after_seq, seq__lte=upto_seq)
        ordered += [(change.seq, change.as_frame(room.slug)) for change in changes]
    ordered.sort(key=lambda pair: pair[0])
    return [frame for _, frame in ordered]


def last_read_id(user: Any, room: Room) -> int:
    if not user.is_authenticated:
        return 0
    marker = ReadMarker.objects.filter(user=user, room=room).values_list("last_read_id", flat=True)
    return marker.first() or 0


def mark_read(user: Any, room: Room, message_id: int) -> int:
    """Move the user's read marker in `room` forward to `message_id` (never back); returns it."""
    access.require_member(user, room)
    marker, _ = ReadMarker.objects.get_or_create(user=user, room=room)
    if message_id > marker.last_read_id:
        ReadMarker.objects.filter(pk=marker.pk, last_read_id__lt=message_id).update(
            last_read_id=message_id
        )
        return message_id
    return marker.last_read_id


def rooms_with_unread(user: Any) -> list[Room]:
    """Every room `user` may read, each annotated with `unread`: visible messages by others after
    the user's read marker (0 for anonymous visitors)."""
    rooms = access.readable_rooms(user)
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


def private_room_summaries() -> list[dict]:
    """What every console sees of private rooms and DMs: that they exist, their kind and how many
    joined members they have; never their title, members' names or messages."""
    rooms = (
        Room.objects.exclude(kind=protocol.ROOM_PUBLIC)
        .annotate(
            members=Count("memberships", filter=Q(memberships__state=Membership.STATE_JOINED))
        )
        .order_by("slug")
    )
    return [{"room": room.slug, "kind": room.kind, "members": room.members} for room in rooms]


def messages_per_minute() -> int:
    """Messages posted in every room during the last 60 seconds."""
    return Message.objects.filter(created__gte=timezone.now() - timedelta(minutes=1)).count()


def recent_audit(limit: int = 50) -> list[dict]:
    entries = AuditEntry.objects.select_related("room").order_by("-id")[:limit]
    return [entry.as_frame() for entry in entries]


def recent_messages(viewer: Any, limit: int = protocol.HISTORY_PAGE_SIZE) -> list[dict]:
    """The latest visible messages of every public room, and of private rooms and DMs when
    `viewer` has chat.view_private_messages, oldest first (the console's feed)."""
    rows = Message.objects.filter(deleted__isnull=True).select_related("room").order_by("-id")
    if not access.can_view_private_messages(viewer):
        rows = rows.filter(room__kind=protocol.ROOM_PUBLIC)
    latest = list(reversed(rows.select_related("reply_to")[:limit]))
    return message_frames(latest)


# --- Changing ----------------------------------------------------------------------------------


def check_storable(value: str, field: str) -> str:
    """`value`, or ChatError(invalid) when it holds a character no database can store (NUL, a
    lone surrogate; see realtime.text): refused before any query runs."""
    character = unstorable_character(value)
    if character is not None:
        raise ChatError(protocol.INVALID, f"'{field}' must not contain the character {character}.")
    return value


def check_text(text: Any, allow_empty: bool = False) -> str:
    """The text of a message or announcement, or ChatError (invalid, empty, too_long). Only a
    message with attachments may have no text (`allow_empty`)."""
    if not isinstance(text, str):
        raise ChatError(protocol.INVALID, "'text' must be a string.")
    check_storable(text, "text")
    if not text.strip() and not allow_empty:
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


def muted_posters(posters: list[tuple[Any, Room]]) -> set[tuple[Any, Any]]:
    """Which of these (user, room) pairs a mute stops from posting now, as (user id, room id), in
    one query (`chat.posting` checks a batch of messages with it; `is_muted` checks one)."""
    user_ids = sorted({user.pk for user, _ in posters})
    if not user_ids:
        return set()
    table, user_column, room_column, until = _sql_names(Mute, "user", "room", "until")
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {user_column}, {room_column} FROM {table} WHERE {until} > %s"
            f" AND {user_column} IN ({', '.join(['%s'] * len(user_ids))})",
            [now, *user_ids],
        )
        mutes = cursor.fetchall()
    return {
        (user.pk, room.pk)
        for user, room in posters
        if any(muted == user.pk and where in (None, room.pk) for muted, where in mutes)
    }


def is_muted(user: Any, room: Room) -> bool:
    """Whether a mute in `room` or in every room stops `user` from posting now."""
    return bool(muted_posters([(user, room)]))


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
    update = f"UPDATE {table} SET {seq} = {seq} + 1 WHERE {pk} = %s"
    with connection.cursor() as cursor:
        if connection.features.can_return_columns_from_insert:  # RETURNING (SQLite, PostgreSQL)
            cursor.execute(f"{update} RETURNING {seq}", [room.pk])
        else:
            cursor.execute(update, [room.pk])
            cursor.execute(f"SELECT {seq} FROM {table} WHERE {pk} = %s", [room.pk])
        return cursor.fetchone()[0]


def _insert(instance: models.Model) -> None:
    """Save a new `instance` with one plain INSERT: what `objects.create()` writes (field
    defaults, `auto_now_add`, each field's database value), without the ORM building the query,
    which cost more than the rest of posting a message. Sends no model signals (chat's models
    have no receivers)."""
    meta = instance._meta
    fields, sql = _insert_statement(type(instance), connection.vendor)
    values = [f.get_db_prep_save(f.pre_save(instance, True), connection) for f in fields]
    with connection.cursor() as cursor:
        if meta.auto_field is None:
            cursor.execute(sql, values)
        elif connection.features.can_return_columns_from_insert:
            cursor.execute(sql, values)
            instance.pk = cursor.fetchone()[0]
        else:
            cursor.execute(sql, values)
            instance.pk = connection.ops.last_insert_id(cursor, meta.db_table, meta.pk.column)
    instance._state.adding = False
    instance._state.db = connection.alias


@functools.cache
def _insert_statement(model: type[models.Model], vendor: str) -> tuple[list[Any], str]:
    """The fields `_insert` writes for `model` and its INSERT statement on this database (with
    RETURNING the new id where the database can)."""
    meta = model._meta
    quote = connection.ops.quote_name
    fields = [f for f in meta.concrete_fields if f is not meta.auto_field]
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(f.column) for f in fields)}) "
        f"VALUES ({', '.join(['%s'] * len(fields))})"
    )
    if meta.auto_field is not None and connection.features.can_return_columns_from_insert:
        sql += f" RETURNING {quote(meta.auto_field.column)}"
    return fields, sql


def post_message(
    user: Any,
    room: Room,
    text: Any,
    client_id: Any = "",
    kind: str = protocol.KIND_MESSAGE,
    reply_to: Any = None,
    attachment_ids: Any = None,
    *,
    muted: bool | None = None,
) -> RoomEvent:
    """Save a message by `user` (checked: text, mute; `reply_to`, the id of a message of the same
    room it answers, or None; `attachment_ids`, the user's uploads to attach: chat.attachments)
    and return its event to broadcast. Idempotent by `client_id`: a post whose (room, user,
    client_id) is already stored saves nothing and returns an event with `echo` set (the stored
    message, for the sender alone). `muted`: whether a mute stops `user` in `room`, when the
    caller read it in this transaction (`muted_posters`); None reads it here."""
    attachment_ids = attachments.check_ids(attachment_ids)
    text = check_text(text, allow_empty=bool(attachment_ids))
    client_id = check_client_id(client_id)
    if not getattr(user, "is_authenticated", False):
        raise ChatError(protocol.LOGIN_REQUIRED, "Log in to take part.")
    access.require_member(user, room)
    if kind == protocol.KIND_MESSAGE:
        _require_not_muted(user, room, muted)
    original = None
    if reply_to is not None:
        original = _reply_target(check_message_id(reply_to, "reply_to"), room)
    try:
        with transaction.atomic():
            seq = _next_seq(room)
            message = Message(
                room=room,
                user=user,
                username=user.get_username(),
                text=text,
                client_id=client_id,
                kind=kind,
                seq=seq,
                event_seq=seq,
                reply_to=original,
            )
            _insert(message)
            files = attachments.claim(user, room, message, attachment_ids)
    except IntegrityError:
        # The unique (room, user, client_id) index: this post is a retry of one already stored
        # (a reload or reconnect while it was in flight). Its seq was rolled back with it.
        stored = _stored_post(user, room, client_id) if client_id else None
        if stored is None:
            raise
        return _echo_of(stored, room)
    return room_event(room, seq, message_frame(message, room.slug, files=files))


def _stored_post(user: Any, room: Room, client_id: str) -> Message | None:
    return (
        Message.objects.select_related("reply_to")
        .filter(room=room, user=user, client_id=client_id)
        .first()
    )


def _echo_of(stored: Message, room: Room) -> RoomEvent:
    """The answer to a retried post: the stored message as its sender should show it (followed by
    its deletion if a moderator removed it meanwhile), broadcast to nobody."""
    frames = [message_frames([stored], room.slug)[0]]
    if stored.deleted is not None:
        frames.append(deleted_frame(stored, room.slug))
    event = room_event(room, stored.seq, frames[0])
    return RoomEvent(event.room, event.seq, event.frame, private=event.private, echo=tuple(frames))


def _reply_target(message_id: int, room: Room) -> Message:
    """The live message of `room` a reply answers (what its quote shows), or ChatError(not_found).
    Plain SQL like is_muted: replies are posts, and the ORM's query building cost more than
    the post itself (bench/chat_rooms.py)."""
    table, pk, room_column, username, text, deleted = _sql_names(
        Message, "id", "room", "username", "text", "deleted"
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {username}, {text} FROM {table}"
            f" WHERE {pk} = %s AND {room_column} = %s AND {deleted} IS NULL",
            [message_id, room.pk],
        )
        row = cursor.fetchone()
    if row is None:
        raise ChatError(protocol.NOT_FOUND, f"There is no message {message_id} here.")
    return Message(pk=message_id, room=room, username=row[0], text=row[1], deleted=None)


def _require_not_muted(user: Any, room: Room, muted: bool | None = None) -> None:
    if not (is_muted(user, room) if muted is None else muted):
        return
    mute = active_mute(user, room)
    if mute is not None:
        minutes = max(1, math.ceil((mute.until - timezone.now()).total_seconds() / 60))
        where = "here" if mute.room_id else "in every room"
        raise ChatError(
            protocol.MUTED,
            f"A moderator muted you {where} for {minutes} more minute{'s' * (minutes != 1)}.",
        )


def check_emoji(emoji: Any) -> str:
    """A reaction from a client frame (one of REACTION_EMOJI), or ChatError(invalid)."""
    if not isinstance(emoji, str) or emoji not in protocol.REACTION_EMOJI:
        raise ChatError(
            protocol.INVALID, f"'emoji' must be one of {' '.join(protocol.REACTION_EMOJI)}."
        )
    return emoji


def react(user: Any, room: Room, message_id: Any, emoji: Any, add: bool = True) -> RoomEvent | None:
    """Add (or, `add` false, take back) the user's `emoji` reaction to a message of `room`.
    Returns the event to broadcast, or None when nothing changed (already so)."""
    if not getattr(user, "is_authenticated", False):
        raise ChatError(protocol.LOGIN_REQUIRED, "Log in to take part.")
    emoji = check_emoji(emoji)
    access.require_member(user, room)
    _require_not_muted(user, room)
    message = _live_message(message_id, room)
    with transaction.atomic():
        if add:
            _, changed = Reaction.objects.get_or_create(
                message=message,
                user=user,
                emoji=emoji,
                defaults={"username": user.get_username()},
            )
        else:
            changed = bool(
                Reaction.objects.filter(message=message, user=user, emoji=emoji).delete()[0]
            )
        if not changed:
            return None
        seq = _next_seq(room)
        message.reactions_seq = seq
        message.save(update_fields=["reactions_seq"])
        summary = reaction_summary(Reaction.objects.filter(message=message).order_by("id"))
    return room_event(room, seq, reactions_frame(message, room.slug, summary))


def check_message_id(message_id: Any, field: str = "id") -> int:
    """A message id from a client frame, or ChatError(invalid)."""
    if not isinstance(message_id, int) or isinstance(message_id, bool):
        raise ChatError(protocol.INVALID, f"'{field}' must be a message id (an integer).")
    return message_id


def _live_message(message_id: Any, room: Room | None) -> Message:
    """The message `message_id` if it is not deleted (and is in `room`, when given), else
    ChatError(not_found). Who may change it is the caller's check."""
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
    access.require_member(user, room)
    message = _live_message(message_id, room)
    _within_edit_window(user, message, "edit")
    with transaction.atomic():
        seq = _next_seq(room)
        message.text = text
        message.edited = timezone.now()
        message.event_seq = seq
        message.save(update_fields=["text", "edited", "event_seq"])
    return room_event(room, seq, edited_frame(message, room.slug))


def delete_message(
    user: Any, message_id: Any, room: Room | None = None
) -> tuple[RoomEvent, AuditEntry | None]:
    """Delete a message: the author within EDIT_WINDOW, staff any message at any time. Returns the
    event and, when staff deleted what the author alone could not, the audit entry written (for a
    private room's message without its text, see docs/apps/chat.md). With `room` (a room socket)
    the user must be able to read it; without (the console) only staff reach beyond their own."""
    if not getattr(user, "is_authenticated", False):
        raise ChatError(protocol.LOGIN_REQUIRED, "Log in to take part.")
    if room is not None:
        access.require_member(user, room)
    message = _live_message(message_id, room)
    own = message.user_id == user.pk and message.kind == protocol.KIND_MESSAGE
    fresh = timezone.now() - message.created <= protocol.EDIT_WINDOW
    moderated = not (own and fresh)
    if moderated and not is_moderator(user):
        _within_edit_window(user, message, "delete")
    target_room = message.room
    if target_room.is_public:
        detail = f"Deleted message {message.pk} by {message.username}: {message.text[:200]}"
    else:
        detail = f"Deleted message {message.pk} by {message.username} in a private room"
    with transaction.atomic():
        seq = _next_seq(target_room)
        message.deleted = timezone.now()
        message.event_seq = seq
        message.save(update_fields=["deleted", "event_seq"])
        transaction.on_commit(lambda: attachments.discard(message.pk))
        entry = None
        if moderated:
            entry = AuditEntry.objects.create(
                actor=user,
                actor_name=user.get_username(),
                action=AuditEntry.ACTION_DELETE,
                room=target_room,
                target_user=message.username,
                message=message,
                detail=detail,
            )
    return room_event(target_room, seq, deleted_frame(message, target_room.slug)), entry


def is_moderator(actor: Any) -> bool:
    """Whether `actor` may moderate now: an active staff account, read from the database (the
    copy a socket holds may be hours old)."""
    if not getattr(actor, "is_authenticated", False):
        return False
    return get_user_model().objects.filter(pk=actor.pk, is_active=True, is_staff=True).exists()


def require_moderator(actor: Any) -> None:
    """ChatError(not_allowed) unless `actor` may moderate (see is_moderator). Every moderation
    function checks this itself, whoever called it."""
    if not is_moderator(actor):
        raise ChatError(protocol.NOT_ALLOWED, "Only moderators (staff) may do that.")


def check_client_id(client_id: Any) -> str:
    """A client's id for a request (for retries and for matching the answer), or ChatError."""
    if not isinstance(client_id, str) or len(client_id) > protocol.MAX_CLIENT_ID_LENGTH:
        raise ChatError(
            protocol.INVALID,
            f"'client_id' must be a string of at most {protocol.MAX_CLIENT_ID_LENGTH} characters.",
        )
    check_storable(client_id, "client_id")
    return client_id


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
    """Mute `username` in one room (or every room when `room_slug` is None) for `minutes`;
    `actor` must be a moderator."""
    require_moderator(actor)
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


def announce(
    actor: Any, text: Any, client_id: Any = ""
) -> tuple[list[RoomEvent], AuditEntry | None]:
    """Post `text` as an announcement in every public room and log it, in one transaction; `actor`
    must be a moderator (private rooms and DMs are never announced into). With a `client_id`, a retry of an announcement already posted posts nothing
    (it returns no events and no entry): a moderator who saw an error may safely send again."""
    require_moderator(actor)
    text = check_text(text)
    client_id = check_client_id(client_id)
    if client_id and _announced(actor, client_id):
        return [], None
    with transaction.atomic():
        posted = [
            post_message(actor, room, text, client_id, kind=protocol.KIND_ANNOUNCEMENT)
            for room in Room.objects.filter(kind=protocol.ROOM_PUBLIC)
        ]
        events = [event for event in posted if not event.echo]
        entry = AuditEntry.objects.create(
            actor=actor,
            actor_name=actor.get_username(),
            action=AuditEntry.ACTION_ANNOUNCE,
            detail=text[:1000],
        )
    return events, entry


def _announced(actor: Any, client_id: str) -> bool:
    return Message.objects.filter(
        user=actor, kind=protocol.KIND_ANNOUNCEMENT, client_id=client_id
    ).exists()


def notify_announcement(actor: Any, text: Any, client_id: Any = "") -> None:
    """Queue the notification of an announcement for every user (the notifications worker fans
    it out). With a `client_id` the fan-out has a stable id, so queueing it again after a failure
    notifies nobody twice. Raises if the channel layer cannot take it."""
    require_moderator(actor)
    text = check_text(text)
    client_id = check_client_id(client_id)
    fanout_id = None
    if client_id:
        fanout_id = uuid.uuid5(_ANNOUNCE_NAMESPACE, f"{actor.pk}:{client_id}").hex
    notify_all(verb="announcement", text=text, url="/", actor=actor, fanout_id=fanout_id)


_ANNOUNCE_NAMESPACE = uuid.UUID("5b0c8f0e-4a47-4d55-9a63-2f1d3c1a6e11")


def mentioned_usernames(text: str) -> set[str]:
    return set(MENTION_RE.findall(text))


def mention_recipients(author: Any, room: Room, text: str) -> list:
    """Every existing active user named as @name in `text` (not the author) who may read `room`
    (in a private room or DM only its joined members) and has not silenced it (chat.attention)."""
    from chat.attention import without_silenced  # chat.attention imports this module

    names = mentioned_usernames(text) - {author.get_username()}
    if not names:
        return []
    users = get_user_model().objects.filter(username__in=names, is_active=True)
    if not room.is_public:
        users = users.filter(
            chat_memberships__room=room, chat_memberships__state=Membership.STATE_JOINED
        )
    return without_silenced(list(users), room)


def notify_mentions(author: Any, event: RoomEvent) -> int:
    """Notify (the bell) every user `mention_recipients` finds in the message; returns how many
    were notified."""
    room = Room.objects.get(slug=event.room)
    access.require_member(author, room)
    users = mention_recipients(author, room, event.frame["text"])
    notify_mentioned(author, event, users)
    return len(users)


def notify_mentioned(author: Any, event: RoomEvent, users: list) -> None:
    """The bell notification of a mention, for `users` (as mention_recipients found them)."""
    if not users:
        return
    notify(
        users,
        verb="mention",
        text=f"{author.get_username()} in #{event.room}: {event.frame['text']}",
        url=f"/rooms/{event.room}/#message-{event.frame['id']}",
        actor=author,
    )
