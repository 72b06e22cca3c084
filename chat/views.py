"""The chat pages: the room list, a room, and the staff console, and the forms that create
private rooms and DMs and change their members. The live parts run in the browser
(static/js/chat.js, members.js, console.js) over the sockets in chat.consumers.

A private room or DM someone may not read answers 404, on its page and every path under it, the
same as a room that does not exist (only an invited person sees the invitation there).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from chat import access, attention, broadcast, membership, protocol, search, services, uploads
from chat.models import Membership, NotifySetting, Room
from chat.presence import presence
from chat.services import ChatError


def _rooms_with_counts(request: HttpRequest) -> list:
    rooms = services.rooms_with_unread(request.user)
    online = async_to_sync(presence.users_in)([room.slug for room in rooms])
    for room in rooms:
        room.online = len(online[room.slug])
    return rooms


def room_list(request: HttpRequest) -> HttpResponse:
    """Every room the visitor may read with how many people are in it and, for logged-in users,
    how many messages are unread; their private rooms, DMs and open invitations."""
    rooms = _rooms_with_counts(request)
    return render(
        request,
        "chat/room_list.html",
        {
            "rooms": [room for room in rooms if room.is_public],
            "private_rooms": [room for room in rooms if not room.is_public],
            "invitations": membership.invitations(request.user),
            "max_dm_others": protocol.MAX_DM_PEOPLE - 1,
            "max_title_length": protocol.MAX_ROOM_TITLE_LENGTH,
        },
    )


def room_counts(request: HttpRequest) -> JsonResponse:
    """The room list's live numbers, polled by static/js/room-list.js (and by attention.js for
    the tab title): {"rooms": {"general": {"online": 3, "unread": 5, "kind": "public",
    "name": "General", "notify": "mentions"}, ...}} ("notify": the reader's level, chat.attention)."""
    counted = _rooms_with_counts(request)
    notify = attention.levels(request.user, counted)
    rooms = {
        room.slug: {
            "online": room.online,
            "unread": room.unread,
            "kind": room.kind,
            "name": room.display_name,
            "notify": notify[room.pk],
        }
        for room in counted
    }
    response = JsonResponse({"rooms": rooms})
    response["Cache-Control"] = "no-store"
    return response


def _readable_room(request: HttpRequest, slug: str) -> Room:
    """The room `slug` if the visitor may read it; Http404 alike for a missing room and for a
    private room or DM they are not in."""
    room = services.get_room(slug)
    if room is None or not access.can_read(request.user, room):
        raise Http404(f"There is no room {slug!r}.")
    return room


def room_detail(request: HttpRequest, slug: str) -> HttpResponse:
    room = services.get_room(slug)
    if room is None:
        raise Http404(f"There is no room {slug!r}.")
    if not access.can_read(request.user, room):
        row = access.membership(request.user, room)
        if row is None:  # not invited either: as if there were no such room
            raise Http404(f"There is no room {slug!r}.")
        return render(request, "chat/invitation.html", {"room": room, "invitation": row})
    own = access.membership(request.user, room)
    people = [] if room.is_public else membership.members(request.user, room)
    return render(
        request,
        "chat/room.html",
        {
            "room": room,
            "rooms": services.rooms_with_unread(request.user),
            "max_text_length": protocol.MAX_TEXT_LENGTH,
            "attachment_max_bytes": uploads.max_bytes(),
            "edit_window_seconds": int(protocol.EDIT_WINDOW.total_seconds()),
            "reaction_emoji_json": json.dumps(protocol.REACTION_EMOJI),
            "members": people,
            "member_count": sum(1 for person in people if person["state"] == "joined"),
            "is_owner": own is not None and own.role == Membership.ROLE_OWNER,
            "notify_level": attention.level(request.user, room),
            "notify_choices": NotifySetting.LEVEL_CHOICES,
        },
    )


def room_members(request: HttpRequest, slug: str) -> JsonResponse:
    """The people of a private room or DM, for its members (404 for anyone else):
    {"room": slug, "kind": "private", "members": [{"user", "role", "state"}, ...]}."""
    room = _readable_room(request, slug)
    people = [] if room.is_public else membership.members(request.user, room)
    response = JsonResponse({"room": room.slug, "kind": room.kind, "members": people})
    response["Cache-Control"] = "no-store"
    return response


def _membership_change(request: HttpRequest, change: Callable[..., Any], *args: Any) -> Any:
    """Run a membership service; a refusal becomes a flash message and changes nothing."""
    try:
        result = change(request.user, *args)
    except ChatError as error:
        messages.error(request, error.detail)
        return None
    return result


@login_required
@require_POST
def create_private_room(request: HttpRequest) -> HttpResponse:
    """Create a private room (the form on the room list); its creator is the owner."""
    result = _membership_change(
        request, membership.create_private_room, request.POST.get("title", "")
    )
    if result is None:
        return redirect("chat:room_list")
    room, event = result
    broadcast.publish_membership([event])
    return redirect(room)


@login_required
@require_POST
def open_dm(request: HttpRequest) -> HttpResponse:
    """Open the DM with the people named (a new one, or the one these people already have)."""
    result = _membership_change(request, membership.open_dm, request.POST.get("usernames", ""))
    if result is None:
        return redirect("chat:room_list")
    room, events = result
    broadcast.publish_membership(events)
    return redirect(room)


@login_required
@require_POST
def invite(request: HttpRequest, slug: str) -> HttpResponse:
    room = _readable_room(request, slug)
    username = request.POST.get("username", "")
    event = _membership_change(request, membership.invite, room, username)
    if event is not None:
        broadcast.publish_membership([event])
        messages.success(request, f"Invited {username.strip()}.")
    return redirect(room)


def _invited_room(request: HttpRequest, slug: str) -> Room:
    room = services.get_room(slug)
    row = access.membership(request.user, room) if room is not None else None
    if row is None or row.state != Membership.STATE_INVITED:
        raise Http404(f"There is no invitation to {slug!r} for you.")
    return room


@login_required
@require_POST
def accept(request: HttpRequest, slug: str) -> HttpResponse:
    room = _invited_room(request, slug)
    event = _membership_change(request, membership.accept, room)
    if event is not None:
        broadcast.publish_membership([event])
    return redirect(room)


@login_required
@require_POST
def decline(request: HttpRequest, slug: str) -> HttpResponse:
    room = _invited_room(request, slug)
    event = _membership_change(request, membership.decline, room)
    if event is not None:
        broadcast.publish_membership([event])
        messages.info(request, f"Declined the invitation to {room.display_name}.")
    return redirect("chat:room_list")


@login_required
@require_POST
def leave(request: HttpRequest, slug: str) -> HttpResponse:
    room = _readable_room(request, slug)
    event = _membership_change(request, membership.leave, room)
    if event is None:
        return redirect(room)
    broadcast.publish_membership([event])
    messages.info(request, f"You left {room.display_name}.")
    return redirect("chat:room_list")


@login_required
@require_POST
def remove(request: HttpRequest, slug: str) -> HttpResponse:
    """The owner (or staff, when a member) removes someone from a private room."""
    room = _readable_room(request, slug)
    username = request.POST.get("username", "")
    event = _membership_change(request, membership.remove, room, username)
    if event is not None:
        broadcast.publish_membership([event])
        messages.success(request, f"Removed {username.strip()}.")
    return redirect(room)


def console(request: HttpRequest) -> HttpResponse:
    """The staff console. Visitors who are not logged in go to the site's log-in page; a logged-in
    user without staff rights gets a page (403) saying so, not Django admin's log-in form."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.user.is_staff:
        return render(request, "chat/console_forbidden.html", status=403)
    return render(request, "chat/console.html", {"rooms": services.rooms_with_unread(request.user)})


def _search(request: HttpRequest) -> tuple[dict | None, Room | None, str]:
    """Run the search a request asks for (q, room, before): (result or None, room, error)."""
    text = request.GET.get("q", "")
    room = None
    if request.GET.get("room"):
        room = _readable_room(request, request.GET["room"])
    before = request.GET.get("before")
    if not text.strip():
        return None, room, ""
    try:
        before_id = int(before) if before else None
    except ValueError:
        return None, room, f"'before' must be a message id, got {before!r}."
    try:
        return search.search_messages(request.user, text, room=room, before=before_id), room, ""
    except ChatError as error:
        return None, room, error.detail


def search_page(request: HttpRequest) -> HttpResponse:
    """Search the messages you may read (all your rooms, or one with ?room=), results newest
    first with the matching words marked, each linking to the message in its room."""
    result, room, error = _search(request)
    if result is not None:
        for hit in result["results"]:
            hit["segments"] = search.marked_segments(hit["text"], hit["highlights"])
            hit["when"] = datetime.fromisoformat(hit["ts"])
    return render(
        request,
        "chat/search.html",
        {
            "result": result,
            "room": room,
            "error": error,
            "query": request.GET.get("q", ""),
            "rooms": services.rooms_with_unread(request.user),
            "max_query_length": search.MAX_QUERY_LENGTH,
        },
    )


def search_api(request: HttpRequest) -> JsonResponse:
    """GET /api/chat/search/?q=&room=&before= -> chat.search's result (400 with "error" for a
    refused query; 404 for a room the user may not read)."""
    result, _, error = _search(request)
    if result is None:
        detail = error or "Type a word to search for."
        response = JsonResponse({"error": detail}, status=400)
    else:
        response = JsonResponse(result)
    response["Cache-Control"] = "no-store"
    return response
