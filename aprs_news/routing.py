"""ASGI routes of the news app, mounted by config/asgi.py (which also mounts the "aprs" scope)."""

from django.urls import path

from aprs_news.consumers import NewsConsumer

websocket_urlpatterns = [path("ws/news/", NewsConsumer.as_asgi())]

# The news app has no worker channels: packets arrive on the "aprs" scope, not a channel.
channel_routes: dict = {}
