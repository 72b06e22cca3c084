from django.apps import AppConfig


class AprsNewsConfig(AppConfig):
    """The APRS news app: news items from APRS-IS, the gateway command and the /news/ page."""

    name = "aprs_news"
    verbose_name = "APRS news"
    default_auto_field = "django.db.models.BigAutoField"
