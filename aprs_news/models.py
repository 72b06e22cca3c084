"""News items kept from APRS traffic, and users' follows of bulletin groups.

A NewsItem is one distinct piece of news: a bulletin or announcement, a status report, an object
or a weather report. Stations re-send the same bulletin (and objects, and status texts) every few
minutes; those re-sends do not make new items: they bump `seen_count` and `last_seen` of the
item whose `dedupe_key` (kind + source + addressee + text, path ignored) matches within the
dedupe window.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

# A bulletin group named by a station is at most five characters ("WX", "CLUB"), so this
# seven-letter key cannot collide with one: it stands for the general bulletins BLN0-9 and the
# announcements BLNA-Z.
GENERAL_GROUP = "GENERAL"


class NewsItem(models.Model):
    """One distinct piece of APRS news, as first received (raw packet kept) and last seen again."""

    class Kind(models.TextChoices):
        BULLETIN = "bulletin", "Bulletin"
        ANNOUNCEMENT = "announcement", "Announcement"
        STATUS = "status", "Status"
        OBJECT = "object", "Object"
        WEATHER = "weather", "Weather"

    kind = models.CharField(max_length=16, choices=Kind.choices, db_index=True)
    source = models.CharField(max_length=16, db_index=True, help_text="Sending callsign with SSID")
    addressee = models.CharField(
        max_length=16, blank=True, help_text="Bulletin address (BLN1WX) or object name"
    )
    group = models.CharField(
        max_length=8,
        blank=True,
        db_index=True,
        help_text=f"Bulletin group users follow (WX, CLUB, or {GENERAL_GROUP}); empty otherwise",
    )
    text = models.TextField(help_text="The news as plain text, never HTML")
    details = models.JSONField(default=dict, blank=True, help_text="Position, weather values")
    raw = models.TextField(help_text="The packet as first received")
    received = models.DateTimeField(db_index=True)
    last_seen = models.DateTimeField()
    seen_count = models.PositiveIntegerField(default=1)
    dedupe_key = models.CharField(max_length=64, db_index=True)

    class Meta:
        ordering = ["-received", "-id"]
        indexes = [models.Index(fields=["dedupe_key", "-last_seen"], name="aprs_news_dedupe_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} from {self.source}: {self.text[:60]}"


class BulletinFollow(models.Model):
    """A user follows a bulletin group and gets a notification for each new bulletin in it."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bulletin_follows"
    )
    group = models.CharField(max_length=8)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "group"], name="aprs_news_unique_follow")
        ]
        ordering = ["group"]

    def __str__(self) -> str:
        return f"{self.user} follows {self.group}"
