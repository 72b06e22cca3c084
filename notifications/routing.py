"""ASGI routes of the notifications app, mounted by config/asgi.py."""

websocket_urlpatterns: list = []
http_urlpatterns: list = []
channel_routes: dict = {}
