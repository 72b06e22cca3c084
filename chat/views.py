"""The chat pages: the room list, a room, and the staff console. The live parts run in the
browser (static/js/chat.js, console.js) over the sockets in chat.consumers."""

from __future__ import annotations

from asgiref.sync import async_to_sync
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from chat import protocol, services
from chat.presence import presence


def _rooms_with_counts(request: HttpRequest) -> list:
    rooms = services.rooms_with_unread(request.user)
    online = async_to_sync(presence.users_in)([room.slug for room in rooms])
    for room in rooms:
        room.online = len(online[room.slug])
    return rooms


def room_list(request: HttpRequest) -> HttpResponse:
    """Every room with how many people are in it and, for members, how many messages are unread."""
    return render(request, "chat/room_list.html", {"rooms": _rooms_with_counts(request)})


def room_counts(request: HttpRequest) -> JsonResponse:
    """The room list's live numbers, polled by static/js/room-list.js:
    {"rooms": {"general": {"online": 3, "unread": 5}, ...}}."""
    rooms = {
        room.slug: {"online": room.online, "unread": room.unread}
        for room in _rooms_with_counts(request)
    }
    response = JsonResponse({"rooms": rooms})
    response["Cache-Control"] = "no-store"
    return response


def room_detail(request: HttpRequest, slug: str) -> HttpResponse:
    room = services.get_room(slug)
    if room is None:
        raise Http404(f"There is no room {slug!r}.")
    return render(
        request,
        "chat/room.html",
        {
            "room": room,
            "rooms": services.rooms_with_unread(request.user),
            "max_text_length": protocol.MAX_TEXT_LENGTH,
            "edit_window_seconds": int(protocol.EDIT_WINDOW.total_seconds()),
        },
    )


def console(request: HttpRequest) -> HttpResponse:
    """The staff console. Visitors who are not logged in go to the site's log-in page; a logged-in
    user without staff rights gets a page (403) saying so, not Django admin's log-in form."""
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not request.user.is_staff:
        return render(request, "chat/console_forbidden.html", status=403)
    return render(request, "chat/console.html", {"rooms": services.rooms_with_unread(request.user)})
