"""Pages and HTTP API of the notifications app (mounted at the site root by config/urls.py).
The long-poll feed `notifications/poll/` is an ASGI route, see routing.py."""

from django.urls import path

from notifications import views

app_name = "notifications"

urlpatterns = [
    path("notifications/", views.notification_list, name="list"),
    path("notifications/read/", views.mark_read_form, name="mark_read"),
    path("api/notifications/", views.api_list, name="api_list"),
    path("api/notifications/read/", views.api_mark_read, name="api_mark_read"),
    path("settings/tokens/", views.token_settings, name="tokens"),
    path("settings/tokens/<int:token_id>/revoke/", views.revoke_token, name="revoke_token"),
]
