"""Who may read a room: the one place that decides it.

A public room is read by anyone (posting needs a login, checked by the services). A private room
or a DM is read, and posted to, only by its *joined* members; an invited person sees the
invitation and nothing else. Staff are not members by being staff: what the console shows of
private rooms is its own policy (docs/apps/chat.md, "Private rooms in the console").

Every service that reads or changes a room calls `require_member` itself, whoever called it, and
every list of rooms starts from `readable_rooms`. Pages and HTTP APIs answer 404 to a non-member
(a private room's existence is not told to those outside it); a room socket answers the error
``not_member`` and closes with 4403 before it joins the room's group.
"""

from __future__ import annotations

from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet

from chat import protocol
from chat.models import Membership, Room


def _joined(user: Any) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user, state=Membership.STATE_JOINED)


def readable_rooms(user: Any) -> QuerySet[Room]:
    """The rooms `user` may read: every public room and the private rooms and DMs they joined
    (one query, with EXISTS)."""
    public = Q(kind=protocol.ROOM_PUBLIC)
    if not getattr(user, "is_authenticated", False):
        return Room.objects.filter(public)
    return Room.objects.filter(public | Exists(_joined(user).filter(room=OuterRef("pk"))))


def can_read(user: Any, room: Room) -> bool:
    """Whether `user` may read (and, logged in, post to) `room` now; read from the database for a
    private room, so a removal counts at once. Every message, edit and reaction in a private room
    runs this, so it is one plain SQL statement (the ORM's query building cost more than the
    query, as for chat.services.is_muted)."""
    if room.kind == protocol.ROOM_PUBLIC:
        return True
    if not getattr(user, "is_authenticated", False):
        return False
    quote = connection.ops.quote_name
    field = Membership._meta.get_field
    table = quote(Membership._meta.db_table)
    room_column, user_column, state_column = (
        quote(field(name).column) for name in ("room", "user", "state")
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT 1 FROM {table} WHERE {room_column} = %s AND {user_column} = %s"
            f" AND {state_column} = %s",
            [room.pk, user.pk, Membership.STATE_JOINED],
        )
        return cursor.fetchone() is not None


def require_member(user: Any, room: Room) -> None:
    """ChatError(not_member) unless `user` may read `room` (see can_read)."""
    if not can_read(user, room):
        from chat.services import ChatError  # chat.services imports this module

        raise ChatError(protocol.NOT_MEMBER, "This room is private and you are not a member.")


def may_open(user: Any, slug: str) -> bool:
    """Whether a room socket for `slug` may join the room: the room is readable by `user`, or
    there is no such room (the socket then says so with 4404). One query for a public room."""
    room = Room.objects.filter(slug=slug).first()
    return room is None or can_read(user, room)


def membership(user: Any, room: Room) -> Membership | None:
    """The user's membership row of `room` (invited or joined), or None."""
    if not getattr(user, "is_authenticated", False):
        return None
    return Membership.objects.filter(user=user, room=room).first()


def can_view_private_messages(user: Any) -> bool:
    """Whether the console and the admin show `user` the text of private rooms and DMs."""
    return bool(
        getattr(user, "is_authenticated", False)
        and user.is_active
        and user.has_perm("chat.view_private_messages")
    )
