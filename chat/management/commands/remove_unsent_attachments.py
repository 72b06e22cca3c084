"""`manage.py remove_unsent_attachments`: delete uploads that no message used within a day.

An upload waits for its message (chat.uploads); one whose message was never sent (the page was
closed, the chip removed) would keep its file forever. The uploader's next upload removes their
own stale ones; this command removes everyone's, for a daily timer or cron job:

    python manage.py remove_unsent_attachments
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from chat import attachments, uploads
from chat.models import Attachment


class Command(BaseCommand):
    help = "Delete attachment uploads not sent in a message within a day (files and rows)."

    def handle(self, *args: Any, **options: Any) -> None:
        cutoff = timezone.now() - uploads.PENDING_LIFETIME
        stale = list(Attachment.objects.filter(message__isnull=True, created__lt=cutoff))
        attachments.remove(stale)
        self.stdout.write(f"Removed {len(stale)} unsent upload{'s' * (len(stale) != 1)}.")
