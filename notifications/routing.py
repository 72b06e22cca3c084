"""ASGI routes of the notifications app, mounted by config/asgi.py.

websocket  ws/notifications/       NotificationConsumer (the root stack adds origin check,
                                   session and user)
http       notifications/poll/     NotificationPoll, with session or Bearer-token auth
channel    notifications-fanout    FanoutConsumer (the worker: notify_all batches)
"""

from django.urls import path

from notifications import protocol
from notifications.authentication import BearerTokenAuthMiddleware
from notifications.consumers import FanoutConsumer, NotificationConsumer, NotificationPoll
from realtime.auth import AuthMiddlewareStack

websocket_urlpatterns = [
    path("ws/notifications/", NotificationConsumer.as_asgi()),
]

http_urlpatterns = [
    path(
        "notifications/poll/",
        AuthMiddlewareStack(BearerTokenAuthMiddleware(NotificationPoll.as_asgi())),
    ),
]

channel_routes = {
    protocol.FANOUT_CHANNEL: FanoutConsumer.as_asgi(),
}
