"""ASGI routes of the chat app, mounted by config/asgi.py (see chat.protocol for the frames)."""

from django.urls import path, re_path

from chat import protocol
from chat.consumers import AdminChatConsumer, PublicChatConsumer

websocket_urlpatterns = [
    path("ws/chat/admin/", AdminChatConsumer.as_asgi()),
    re_path(rf"^ws/chat/(?P<room>{protocol.ROOM_SLUG_PATTERN})/$", PublicChatConsumer.as_asgi()),
]

# Chat needs no worker channels: fan-outs it starts (announcements) run on notifications' worker.
channel_routes: dict = {}
