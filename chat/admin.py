"""Django admin for rooms, messages, mutes and the moderators' audit log."""

from django.contrib import admin

from chat.models import AuditEntry, Message, Mute, ReadMarker, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "topic", "created", "seq"]
    search_fields = ["slug", "title"]
    readonly_fields = ["seq"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "room", "username", "short_text", "kind", "created", "edited", "deleted"]
    list_filter = ["room", "kind", ("deleted", admin.EmptyFieldListFilter)]
    search_fields = ["text", "username"]
    readonly_fields = ["seq", "event_seq", "created"]
    list_select_related = ["room"]

    @admin.display(description="text")
    def short_text(self, message: Message) -> str:
        return message.text[:80]


@admin.register(Mute)
class MuteAdmin(admin.ModelAdmin):
    list_display = ["user", "room", "until", "created_by", "created"]
    list_select_related = ["user", "room", "created_by"]


@admin.register(ReadMarker)
class ReadMarkerAdmin(admin.ModelAdmin):
    list_display = ["user", "room", "last_read_id"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["created", "actor_name", "action", "room", "target_user", "detail"]
    list_filter = ["action", "room"]
    search_fields = ["actor_name", "target_user", "detail"]
    list_select_related = ["room"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
