from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    """Per-user notifications: stored, streamed live, long-polled, read over an HTTP API."""

    name = "notifications"
    default_auto_field = "django.db.models.BigAutoField"
