"""`{% notification_bell_data as bell %}`: what the header bell (notifications/_bell.html) shows."""

from django import template

from notifications import services
from notifications.models import Notification

register = template.Library()

BELL_RECENT = 8


@register.simple_tag(takes_context=True)
def notification_bell_data(context) -> dict:
    """{"unread": N, "recent": [Notification, ...]} for the logged-in user, empty otherwise."""
    request = context.get("request")
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"unread": 0, "recent": []}
    recent = list(
        Notification.objects.filter(recipient=user)
        .select_related("actor")
        .order_by("-id")[:BELL_RECENT]
    )
    return {"unread": services.unread_count(user.pk), "recent": recent}
