"""Django app configuration for the realtime core (its management commands live in this app)."""

from django.apps import AppConfig


class RealtimeConfig(AppConfig):
    """The `realtime` app: routers, consumers, channel layers, middleware and the worker."""

    name = "realtime"
    verbose_name = "Realtime core"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from realtime.accounts import connect_signals

        # Open sockets follow their account (logout, password, deactivation, staff rights).
        connect_signals()
