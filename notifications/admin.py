from django.contrib import admin

from notifications.models import AccessToken, Notification


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ["id", "recipient", "verb", "text", "actor", "created", "read"]
    list_filter = ["verb", "read"]
    search_fields = ["recipient__username", "text"]
    raw_id_fields = ["recipient", "actor"]


@admin.register(AccessToken)
class AccessTokenAdmin(admin.ModelAdmin):
    """Tokens are listed and revoked here; their secret cannot be read back (only a hash is
    kept)."""

    list_display = ["name", "user", "hint", "created", "last_used"]
    search_fields = ["user__username", "name"]
    readonly_fields = ["token_hash", "hint", "created", "last_used"]
    raw_id_fields = ["user"]

    def has_add_permission(self, request) -> bool:
        return False
