"""Django admin for rooms, memberships, messages, mutes and the moderators' audit log.

The messages of private rooms and DMs are listed only for staff with
``chat.view_private_messages`` (the policy in docs/apps/chat.md); rooms and memberships are
listed for every staff user with the usual model permissions.
"""

from django.contrib import admin

from chat import access, protocol
from chat.models import AuditEntry, Membership, Message, Mute, ReadMarker, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["slug", "title", "kind", "topic", "created", "seq"]
    list_filter = ["kind"]
    search_fields = ["slug", "title"]
    readonly_fields = ["seq", "dm_key"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["room", "user", "role", "state", "added_by", "created"]
    list_filter = ["state", "role"]
    list_select_related = ["room", "user", "added_by"]
    search_fields = ["room__slug", "user__username"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "room", "username", "short_text", "kind", "created", "edited", "deleted"]
    list_filter = ["room", "kind", ("deleted", admin.EmptyFieldListFilter)]
    search_fields = ["text", "username"]
    readonly_fields = ["seq", "event_seq", "created"]
    list_select_related = ["room"]

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        if not access.can_view_private_messages(request.user):
            rows = rows.filter(room__kind=protocol.ROOM_PUBLIC)
        return rows

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
