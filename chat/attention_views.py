"""The page where a reader chooses what notifies them: each room they may read (all / mentions
and DMs / nothing) and after how long an unread mention or DM is e-mailed. The room page sets
its own room's level over the socket (the ``notify`` frame); this page lists them all.

A form field for a room the reader may not read (a private room they are not in, or a slug
that does not exist) is refused and changes nothing.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from chat import access, attention, protocol
from chat.models import NotifySetting
from chat.services import ChatError

LEVEL_PREFIX = "level-"  # form fields: level-<room slug> = a notify level
DELAY_LABELS = {
    0: "Never",
    5: "After 5 minutes",
    15: "After 15 minutes",
    60: "After 1 hour",
    24 * 60: "After 1 day",
}


def _delay_label(minutes: int) -> str:
    return DELAY_LABELS.get(minutes) or f"After {minutes} minutes"


@login_required
def notification_settings(request: HttpRequest) -> HttpResponse:
    """GET: the form; POST: save it (all or nothing) and come back with a flash message."""
    if request.method == "POST":
        try:
            _save(request)
        except ChatError as error:
            messages.error(request, error.detail)
        else:
            messages.success(request, "Saved what notifies you.")
        return redirect("chat:notification_settings")
    rooms = list(access.readable_rooms(request.user).order_by("kind", "slug"))
    chosen = attention.levels(request.user, rooms)
    for room in rooms:
        room.notify_level = chosen[room.pk]
    return render(
        request,
        "chat/notification_settings.html",
        {
            "rooms": rooms,
            "level_choices": NotifySetting.LEVEL_CHOICES,
            "delay": attention.mail_delay(request.user),
            "delay_choices": [(m, _delay_label(m)) for m in protocol.MAIL_DELAY_MINUTES],
            "has_email": bool(request.user.email),
        },
    )


def _save(request: HttpRequest) -> None:
    """Apply the form in one transaction: a refused field (a room the reader may not read, an
    unknown level or delay) changes nothing at all."""
    with transaction.atomic():
        if "delay" in request.POST:
            attention.set_mail_delay(request.user, request.POST["delay"])
        for field, value in request.POST.items():
            if not field.startswith(LEVEL_PREFIX):
                continue
            slug = field.removeprefix(LEVEL_PREFIX)
            room = access.readable_rooms(request.user).filter(slug=slug).first()
            if room is None:
                raise ChatError(protocol.NOT_MEMBER, f"You cannot choose for the room {slug!r}.")
            attention.set_level(request.user, room, value)
