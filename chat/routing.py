"""ASGI routes of the chat app, mounted by config/asgi.py."""

websocket_urlpatterns: list = []
channel_routes: dict = {}
