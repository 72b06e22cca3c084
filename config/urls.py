"""Django URL configuration: pages and HTTP APIs. WebSocket and long-poll routes live in each app's
routing.py and are mounted by config/asgi.py."""

from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

# The admin's own login form checks passwords without allauth's login limits; this sends anyone
# not yet logged in to the site's login (rate limited, docs/security.md) and back to the admin.
# A logged-in user who is not active staff gets 403.
admin.site.login = secure_admin_login(admin.site.login)  # type: ignore[method-assign]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("", include("chat.urls")),
    path("", include("notifications.urls")),
    path("news/", include("aprs_news.urls")),
    path("", include("config.health_urls")),
]
