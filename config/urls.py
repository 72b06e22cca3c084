"""Django URL configuration: pages and HTTP APIs. WebSocket and long-poll routes live in each app's
routing.py and are mounted by config/asgi.py."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("chat.urls")),
    path("", include("notifications.urls")),
    path("news/", include("aprs_news.urls")),
    path("", include("config.health_urls")),
]
