"""Rooms, their members, messages, read markers, mutes and the moderators' audit log.

A room numbers its lasting events (new message, edit, delete, membership change) with
``Room.seq``, without gaps: ``Message.seq`` is the event that created a message and
``Message.event_seq`` the latest event that changed it; a ``MemberEvent`` holds the number of one
membership change. Sockets use the numbers to notice a broadcast they missed and fetch it here.

A room is public, private or a direct message (``Room.kind``). Who may read a private room or DM
is its joined ``Membership`` rows; `chat.access` is the one place that decides it.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.urls import reverse

from chat import protocol


def validate_room_slug(value: str) -> None:
    """Room slugs are letters, digits, '-' and '_'; some names are reserved for the site."""
    if value.lower() in protocol.RESERVED_ROOM_SLUGS:
        raise ValidationError(f"{value!r} is reserved and cannot name a room.")


class Room(models.Model):
    """A chat room, addressed by its slug (``/rooms/<slug>/``, ``ws/chat/<slug>/``): public (staff
    create them), private (a user creates one and invites people) or a DM (a fixed set of people,
    one room per set: ``dm_key`` is their sorted user ids)."""

    KIND_CHOICES = [
        (protocol.ROOM_PUBLIC, "Public"),
        (protocol.ROOM_PRIVATE, "Private"),
        (protocol.ROOM_DM, "Direct message"),
    ]

    slug = models.CharField(
        max_length=50,
        unique=True,
        validators=[
            RegexValidator(protocol.ROOM_SLUG_RE, "Use letters, digits, '-' and '_' (at most 50)."),
            validate_room_slug,
        ],
    )
    title = models.CharField(max_length=100, blank=True)
    topic = models.CharField(max_length=300, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    seq = models.BigIntegerField(default=0, editable=False)
    kind = models.CharField(max_length=10, choices=KIND_CHOICES, default=protocol.ROOM_PUBLIC)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    dm_key = models.CharField(max_length=200, null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["slug"]
        permissions = [
            (
                "view_private_messages",
                "Can read the messages of private rooms and DMs (console, admin)",
            )
        ]

    def __str__(self) -> str:
        return f"#{self.slug}"

    def get_absolute_url(self) -> str:
        return reverse("chat:room", kwargs={"slug": self.slug})

    @property
    def is_public(self) -> bool:
        return self.kind == protocol.ROOM_PUBLIC

    @property
    def display_name(self) -> str:
        return self.title or self.slug


class Membership(models.Model):
    """One person in a private room or DM: invited (may accept or decline) or joined (reads and
    posts). Public rooms have no memberships."""

    ROLE_OWNER = "owner"
    ROLE_MEMBER = "member"
    ROLE_CHOICES = [(ROLE_OWNER, "Owner"), (ROLE_MEMBER, "Member")]
    STATE_INVITED = "invited"
    STATE_JOINED = "joined"
    STATE_CHOICES = [(STATE_INVITED, "Invited"), (STATE_JOINED, "Joined")]

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_memberships"
    )
    role = models.CharField(max_length=10, choices=ROLE_CHOICES, default=ROLE_MEMBER)
    state = models.CharField(max_length=10, choices=STATE_CHOICES, default=STATE_INVITED)
    added_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="chat_membership_room_user")
        ]
        indexes = [models.Index(fields=["user", "state"], name="chat_membership_user_state")]

    def __str__(self) -> str:
        return f"{self.user_id} {self.state} #{self.room_id} ({self.role})"


class MemberEvent(models.Model):
    """A numbered membership change of a room (see chat.protocol's ``member`` frame), kept so a
    reconnecting socket replays it like an edit."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="member_events")
    seq = models.BigIntegerField(editable=False)
    action = models.CharField(max_length=10)
    username = models.CharField(max_length=150)
    actor_name = models.CharField(max_length=150, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["seq"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="chat_member_event_seq")
        ]

    def __str__(self) -> str:
        return f"#{self.room_id}/{self.seq} {self.username} {self.action}"

    def as_frame(self, room_slug: str) -> dict:
        return {
            "type": protocol.MEMBER,
            "room": room_slug,
            "user": self.username,
            "action": self.action,
            "by": self.actor_name,
            "seq": self.seq,
        }


class Message(models.Model):
    """One message in one room. Deleting hides it (``deleted`` is set) and keeps the row, so the
    audit log and the event numbering stay intact."""

    KIND_CHOICES = [
        (protocol.KIND_MESSAGE, "Message"),
        (protocol.KIND_ANNOUNCEMENT, "Announcement"),
    ]

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    username = models.CharField(max_length=150)
    text = models.TextField()
    kind = models.CharField(max_length=20, choices=KIND_CHOICES, default=protocol.KIND_MESSAGE)
    client_id = models.CharField(max_length=protocol.MAX_CLIENT_ID_LENGTH, blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)
    edited = models.DateTimeField(null=True, blank=True)
    deleted = models.DateTimeField(null=True, blank=True)
    seq = models.BigIntegerField(editable=False)
    event_seq = models.BigIntegerField(editable=False)
    reply_to = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # The latest event that changed the message's reactions (0: none yet).
    reactions_seq = models.BigIntegerField(default=0, editable=False)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["room", "seq"], name="chat_message_seq"),
            # One message per client_id a sender's page generated: a post retried after a reload
            # or a reconnect finds the stored one instead of saving it twice (services.post_message).
            models.UniqueConstraint(
                fields=["room", "user", "client_id"],
                condition=~models.Q(client_id=""),
                name="chat_message_client_id",
            ),
        ]
        indexes = [models.Index(fields=["room", "event_seq"], name="chat_message_event_seq")]

    def __str__(self) -> str:
        return f"#{self.room_id}/{self.pk} {self.username}: {self.text[:40]}"


class Reaction(models.Model):
    """One person's reaction (an emoji of protocol.REACTION_EMOJI) to one message."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    username = models.CharField(max_length=150)
    emoji = models.CharField(max_length=16)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="chat_reaction_message_user_emoji"
            )
        ]

    def __str__(self) -> str:
        return f"{self.username} {self.emoji} on {self.message_id}"


class Attachment(models.Model):
    """A file someone uploaded to a room (chat.uploads), then attached to one message of theirs.

    Until a message claims it (``message`` set, once, by chat.attachments.claim) only its uploader
    sees it; afterwards whoever may read the room, for as long as the message is not deleted
    (chat.attachment_views checks both on every request). The stored names are under a random
    ``key``, never the uploader's file name, so a path in storage tells nothing and cannot be
    guessed; ``content_type`` is what the content was found to be, not what the client said.
    """

    key = models.CharField(max_length=40, unique=True, editable=False)
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="attachments")
    uploader = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_attachments"
    )
    message = models.ForeignKey(
        Message, null=True, blank=True, on_delete=models.CASCADE, related_name="attachments"
    )
    name = models.CharField(max_length=protocol.MAX_ATTACHMENT_NAME_LENGTH)
    content_type = models.CharField(max_length=100)
    size = models.BigIntegerField()
    file = models.FileField(max_length=200)
    thumbnail = models.FileField(max_length=200, blank=True)
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["uploader", "message"], name="chat_attachment_pending"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.size} bytes) in #{self.room_id}"

    @property
    def is_image(self) -> bool:
        return self.content_type in protocol.IMAGE_CONTENT_TYPES


class ReadMarker(models.Model):
    """The newest message a member has seen in a room (for unread counts and the divider)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="read_markers")
    last_read_id = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "room"], name="chat_read_marker_user_room")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read #{self.room_id} up to {self.last_read_id}"


class Mute(models.Model):
    """A user may not post until ``until``, in one room or (room empty) in every room."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.CASCADE)
    until = models.DateTimeField(db_index=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        where = f"#{self.room.slug}" if self.room_id else "every room"
        return f"user {self.user_id} muted in {where} until {self.until:%Y-%m-%d %H:%M}"


class AuditEntry(models.Model):
    """One moderator action (delete, mute, announce), shown in the console and Django admin."""

    ACTION_DELETE = "delete"
    ACTION_MUTE = "mute"
    ACTION_ANNOUNCE = "announce"
    ACTION_CHOICES = [
        (ACTION_DELETE, "Deleted a message"),
        (ACTION_MUTE, "Muted a user"),
        (ACTION_ANNOUNCE, "Announced"),
    ]

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150)
    action = models.CharField(max_length=20, choices=ACTION_CHOICES)
    room = models.ForeignKey(Room, null=True, blank=True, on_delete=models.SET_NULL)
    target_user = models.CharField(max_length=150, blank=True)
    message = models.ForeignKey(Message, null=True, blank=True, on_delete=models.SET_NULL)
    detail = models.TextField(blank=True)
    created = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.actor_name} {self.action} {self.detail[:60]}"

    def as_frame(self) -> dict:
        """The entry as it appears in an ``audit`` frame."""
        return {
            "id": self.pk,
            "actor": self.actor_name,
            "action": self.action,
            "room": self.room.slug if self.room_id else None,
            "target_user": self.target_user,
            "message_id": self.message_id,
            "detail": self.detail,
            "ts": self.created.isoformat(),
        }


class NotifySetting(models.Model):
    """What of one room notifies one reader (protocol.NOTIFY_LEVELS). No row: the default,
    mentions and DMs (chat.attention reads and writes these)."""

    LEVEL_CHOICES = [
        (protocol.NOTIFY_ALL, "Every message"),
        (protocol.NOTIFY_MENTIONS, "Mentions and direct messages"),
        (protocol.NOTIFY_NOTHING, "Nothing"),
    ]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="notify_settings")
    level = models.CharField(max_length=10, choices=LEVEL_CHOICES)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "room"], name="chat_notify_setting_user_room")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} in #{self.room_id}: {self.level}"


class MailSetting(models.Model):
    """How long one person's mentions and DMs may stay unread before they are e-mailed (minutes,
    one of protocol.MAIL_DELAY_MINUTES; 0: never). No row: the default delay."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_mail_setting"
    )
    delay_minutes = models.PositiveIntegerField()

    def __str__(self) -> str:
        return f"{self.user_id}: mail after {self.delay_minutes} min"


class PendingMail(models.Model):
    """A mention or DM message one person may be e-mailed about once `due` has passed (chat.mail).

    The sweep that takes a row sets `claim` (its own token) and `mailed` in one UPDATE before it
    sends, so a row is taken once, by one sweep, even across restarts and concurrent sweeps; a
    send that fails gives the rows back. Rows found read (or no longer readable) are deleted."""

    REASON_MENTION = "mention"
    REASON_DM = "dm"
    REASON_CHOICES = [(REASON_MENTION, "Mention"), (REASON_DM, "Direct message")]

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="+")
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="+")
    reason = models.CharField(max_length=10, choices=REASON_CHOICES)
    due = models.DateTimeField()
    claim = models.CharField(max_length=32, blank=True)
    mailed = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "message"], name="chat_pending_mail_message")
        ]
        indexes = [models.Index(fields=["mailed", "due"], name="chat_pending_mail_due")]

    def __str__(self) -> str:
        state = f"mailed {self.mailed:%Y-%m-%d %H:%M}" if self.mailed else f"due {self.due}"
        return f"{self.user_id} about message {self.message_id} ({self.reason}), {state}"
