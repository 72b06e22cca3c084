from django.apps import AppConfig


class ChatConfig(AppConfig):
    """Public chat rooms, the admin console and moderation."""

    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"
