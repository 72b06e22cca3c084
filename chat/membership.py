"""Private rooms and direct messages: creating them and changing who is in them.

Each function checks the actor's rights itself and returns a `RoomEvent` (a numbered ``member``
frame, see `chat.protocol`) to broadcast once committed; an event that ends someone's access
carries ``revoke`` (their user id) so `chat.broadcast.publish_membership` closes their sockets
on the room. Rights:

- anyone logged in creates a private room (becoming its owner) or opens a DM;
- a joined member of a private room invites people; the invited person accepts or declines;
- a member leaves (an owner too; the room lives on with its other members);
- the owner, or staff, removes others;
- a DM's people are fixed (it is found again by the same set of people): nobody is invited to,
  leaves or is removed from a DM.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from chat import access, protocol
from chat.models import MemberEvent, Membership, Room
from chat.services import ChatError, RoomEvent, _next_seq, is_moderator, room_event


def _require_login(user: Any) -> None:
    if not getattr(user, "is_authenticated", False):
        raise ChatError(protocol.LOGIN_REQUIRED, "Log in to take part.")


def _new_slug(prefix: str) -> str:
    """A slug nobody can guess (a private room's name must not be found by trying slugs)."""
    return f"{prefix}-{secrets.token_hex(6)}"


def _record(room: Room, action: str, username: str, actor: Any, revoke: int | None = None):
    """Number and store one membership change; call inside transaction.atomic()."""
    seq = _next_seq(room)
    change = MemberEvent.objects.create(
        room=room,
        seq=seq,
        action=action,
        username=username,
        actor_name=actor.get_username() if actor is not None else "",
    )
    return room_event(room, seq, change.as_frame(room.slug), revoke=revoke)


def _user_named(username: Any):
    if not isinstance(username, str) or not username.strip():
        raise ChatError(protocol.INVALID, "Give a username.")
    user = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
    if user is None:
        raise ChatError(protocol.NOT_FOUND, f"There is no user {username.strip()!r}.")
    return user


def _private_room(room: Room, verb: str) -> None:
    if room.kind == protocol.ROOM_DM:
        raise ChatError(protocol.NOT_ALLOWED, f"Nobody can {verb} a direct message.")
    if room.kind != protocol.ROOM_PRIVATE:
        raise ChatError(protocol.NOT_ALLOWED, f"Only private rooms have members to {verb}.")


def create_private_room(user: Any, title: Any, topic: Any = "") -> tuple[Room, RoomEvent]:
    """A new private room titled `title`, `user` its owner and only member."""
    _require_login(user)
    if not isinstance(title, str) or not title.strip():
        raise ChatError(protocol.EMPTY, "A room needs a name.")
    title = title.strip()
    if len(title) > protocol.MAX_ROOM_TITLE_LENGTH:
        raise ChatError(
            protocol.TOO_LONG,
            f"A room name has at most {protocol.MAX_ROOM_TITLE_LENGTH} characters.",
        )
    topic = topic.strip()[:300] if isinstance(topic, str) else ""
    with transaction.atomic():
        room = Room.objects.create(
            slug=_new_slug("p"),
            title=title,
            topic=topic,
            kind=protocol.ROOM_PRIVATE,
            created_by=user,
        )
        Membership.objects.create(
            room=room,
            user=user,
            role=Membership.ROLE_OWNER,
            state=Membership.STATE_JOINED,
            added_by=user,
        )
        event = _record(room, protocol.MEMBER_JOINED, user.get_username(), user)
    return room, event


def dm_key(user_ids: set[int]) -> str:
    return ",".join(str(pk) for pk in sorted(user_ids))


def open_dm(user: Any, usernames: Any) -> tuple[Room, list[RoomEvent]]:
    """The DM between `user` and the people named (1 to MAX_DM_PEOPLE - 1 others): the existing
    one for that set of people, or a new one (then with its events to broadcast)."""
    _require_login(user)
    if isinstance(usernames, str):
        usernames = [name for name in usernames.replace(",", " ").split() if name]
    if not isinstance(usernames, list) or not all(isinstance(n, str) for n in usernames):
        raise ChatError(protocol.INVALID, "Give the usernames to write to.")
    names = {name.strip().lstrip("@") for name in usernames} - {user.get_username()}
    if not names:
        raise ChatError(protocol.EMPTY, "Name at least one other person.")
    if len(names) + 1 > protocol.MAX_DM_PEOPLE:
        raise ChatError(
            protocol.INVALID,
            f"A direct message has at most {protocol.MAX_DM_PEOPLE} people, you included.",
        )
    others = list(get_user_model().objects.filter(username__in=names, is_active=True))
    missing = names - {other.get_username() for other in others}
    if missing:
        raise ChatError(protocol.NOT_FOUND, f"There is no user {sorted(missing)[0]!r}.")
    key = dm_key({user.pk} | {other.pk for other in others})
    existing = Room.objects.filter(dm_key=key).first()
    if existing is not None:
        return existing, []
    people = [user, *sorted(others, key=lambda other: other.get_username())]
    try:
        with transaction.atomic():
            room = Room.objects.create(
                slug=_new_slug("dm"),
                title=", ".join(person.get_username() for person in people),
                kind=protocol.ROOM_DM,
                created_by=user,
                dm_key=key,
            )
            events = []
            for person in people:
                Membership.objects.create(
                    room=room,
                    user=person,
                    role=Membership.ROLE_OWNER if person == user else Membership.ROLE_MEMBER,
                    state=Membership.STATE_JOINED,
                    added_by=user,
                )
                events.append(_record(room, protocol.MEMBER_JOINED, person.get_username(), user))
    except IntegrityError:
        # The same people opened it at the same moment: theirs is the one.
        return Room.objects.get(dm_key=key), []
    return room, events


def invite(actor: Any, room: Room, username: Any) -> RoomEvent:
    """Invite `username` to the private room; `actor` must be a joined member."""
    _require_login(actor)
    access.require_member(actor, room)
    _private_room(room, "invite to")
    person = _user_named(username)
    with transaction.atomic():
        _, created = Membership.objects.get_or_create(
            room=room, user=person, defaults={"added_by": actor}
        )
        if not created:
            raise ChatError(
                protocol.INVALID, f"{person.get_username()} is already invited or a member."
            )
        return _record(room, protocol.MEMBER_INVITED, person.get_username(), actor)


def _invitation(user: Any, room: Room) -> Membership:
    _require_login(user)
    row = Membership.objects.filter(room=room, user=user, state=Membership.STATE_INVITED).first()
    if row is None:
        raise ChatError(protocol.NOT_FOUND, "There is no invitation to this room for you.")
    return row


def accept(user: Any, room: Room) -> RoomEvent:
    """Accept an invitation: the user joins the room."""
    row = _invitation(user, room)
    with transaction.atomic():
        updated = Membership.objects.filter(pk=row.pk, state=Membership.STATE_INVITED).update(
            state=Membership.STATE_JOINED
        )
        if not updated:
            raise ChatError(protocol.NOT_FOUND, "There is no invitation to this room for you.")
        return _record(room, protocol.MEMBER_JOINED, user.get_username(), user)


def decline(user: Any, room: Room) -> RoomEvent:
    """Decline an invitation: it is deleted."""
    row = _invitation(user, room)
    with transaction.atomic():
        deleted, _ = Membership.objects.filter(pk=row.pk, state=Membership.STATE_INVITED).delete()
        if not deleted:
            raise ChatError(protocol.NOT_FOUND, "There is no invitation to this room for you.")
        return _record(room, protocol.MEMBER_DECLINED, user.get_username(), user)


def leave(user: Any, room: Room) -> RoomEvent:
    """Leave a private room (the user's own row goes; their sockets on it close)."""
    _require_login(user)
    access.require_member(user, room)
    _private_room(room, "leave")
    with transaction.atomic():
        Membership.objects.filter(room=room, user=user).delete()
        # An owner who leaves hands the room to the longest-joined member, so someone can still
        # remove people.
        rest = Membership.objects.filter(room=room, state=Membership.STATE_JOINED)
        if not rest.filter(role=Membership.ROLE_OWNER).exists():
            heir = rest.order_by("id").first()
            if heir is not None:
                Membership.objects.filter(pk=heir.pk).update(role=Membership.ROLE_OWNER)
        return _record(room, protocol.MEMBER_LEFT, user.get_username(), user, revoke=user.pk)


def remove(actor: Any, room: Room, username: Any) -> RoomEvent:
    """Remove someone else (a member or an invitation) from a private room: the owner or staff."""
    _require_login(actor)
    moderator = is_moderator(actor)
    if not moderator:
        access.require_member(actor, room)
    _private_room(room, "remove people from")
    owner = Membership.objects.filter(
        room=room, user=actor, state=Membership.STATE_JOINED, role=Membership.ROLE_OWNER
    ).exists()
    if not (owner or moderator):
        raise ChatError(protocol.NOT_ALLOWED, "Only the room's owner (or staff) removes people.")
    person = _user_named(username)
    if person.pk == actor.pk:
        raise ChatError(protocol.INVALID, "To leave the room, use Leave.")
    with transaction.atomic():
        deleted, _ = Membership.objects.filter(room=room, user=person).delete()
        if not deleted:
            raise ChatError(protocol.NOT_FOUND, f"{person.get_username()} is not in this room.")
        return _record(
            room, protocol.MEMBER_REMOVED, person.get_username(), actor, revoke=person.pk
        )


def members(viewer: Any, room: Room) -> list[dict]:
    """Who is in a private room or DM, for one who may read it: username, role, state."""
    access.require_member(viewer, room)
    rows = Membership.objects.filter(room=room).select_related("user").order_by("state", "id")
    return [{"user": row.user.get_username(), "role": row.role, "state": row.state} for row in rows]


def invitations(user: Any) -> list[Membership]:
    """The user's open invitations, newest first, with room and inviter loaded."""
    if not getattr(user, "is_authenticated", False):
        return []
    return list(
        Membership.objects.filter(user=user, state=Membership.STATE_INVITED)
        .select_related("room", "added_by")
        .order_by("-id")
    )
