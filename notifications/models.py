"""Stored notifications and personal access tokens.

A Notification belongs to one recipient; `actor` is who caused it (empty for system events). An
AccessToken lets a non-browser client call the HTTP API and long-poll feed with
`Authorization: Bearer <token>`; only a SHA-256 digest of the token is stored, so the raw token is
shown exactly once, when it is created.
"""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

from notifications import protocol

TOKEN_PREFIX = "sbt_"


class Notification(models.Model):
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    verb = models.CharField(max_length=50)
    text = models.CharField(max_length=1000)
    url = models.CharField(max_length=500, blank=True)
    created = models.DateTimeField(default=timezone.now)
    read = models.BooleanField(default=False)
    # Set on notifications made by one notify_all() fan-out, so a re-delivered batch is not
    # notified twice; blank for direct notify() calls.
    fanout_id = models.CharField(max_length=32, blank=True, db_index=True)
    # A fan-out notification saved but not yet pushed live: the worker that saved it may die
    # before its push, and the batch delivered again then pushes what is still pending.
    push_pending = models.BooleanField(default=False)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["recipient", "read"], name="notif_recipient_read"),
            models.Index(fields=["recipient", "-id"], name="notif_recipient_id"),
        ]
        constraints = [
            # One notification per fan-out and recipient, whatever two workers on one batch do.
            models.UniqueConstraint(
                fields=["fanout_id", "recipient"],
                condition=~models.Q(fanout_id=""),
                name="notif_one_per_fanout_recipient",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.verb} for {self.recipient_id}: {self.text[:40]}"

    def as_frame(self) -> dict:
        """The JSON shape shared by the WebSocket frame, the long-poll feed and the HTTP API."""
        return {
            "type": protocol.NOTIFICATION,
            "id": self.id,
            "verb": self.verb,
            "text": self.text,
            "url": self.url,
            "actor": self.actor.get_username() if self.actor_id and self.actor else "",
            "created": self.created.isoformat(),
            "read": self.read,
        }


class AccessTokenQuerySet(models.QuerySet):
    def user_for(self, raw_token: str):
        """The active user a raw token belongs to (and mark the token used), or None."""
        if not raw_token.startswith(TOKEN_PREFIX):
            return None
        token = (
            self.select_related("user")
            .filter(token_hash=AccessToken.digest(raw_token), user__is_active=True)
            .first()
        )
        if token is None:
            return None
        now = timezone.now()
        if token.last_used is None or (now - token.last_used).total_seconds() > 60:
            type(token).objects.filter(pk=token.pk).update(last_used=now)
        return token.user


class AccessToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="access_tokens"
    )
    name = models.CharField(max_length=100)
    token_hash = models.CharField(max_length=64, unique=True)
    # The first characters of the raw token, so the owner can tell their tokens apart.
    hint = models.CharField(max_length=12)
    created = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)

    objects = AccessTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.hint}…)"

    @staticmethod
    def digest(raw_token: str) -> str:
        # Tokens carry 256 random bits: a fast unsalted hash is enough (no guessing to slow down).
        return hashlib.sha256(raw_token.encode()).hexdigest()

    @classmethod
    def issue(cls, user, name: str) -> tuple[AccessToken, str]:
        """Create a token for `user`; returns it and the raw token, which is never stored."""
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, token_hash=cls.digest(raw), hint=raw[: len(TOKEN_PREFIX) + 4]
        )
        return token, raw
