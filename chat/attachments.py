"""Attachments in messages: what a `message` frame says of them, attaching uploads to a new
message, who may download one, and forgetting the files of a deleted message.

An upload (chat.uploads) belongs to its uploader and its room until a message claims it. A
``message`` frame from the client names the ids to attach (chat.protocol); `claim` attaches them
in the transaction that saves the message, with one UPDATE whose WHERE is the whole rule (the
sender's own uploads, to this room, not attached yet), so an id that is someone else's, of
another room, already used, or claimed by a concurrent message makes the post fail whole.

Frames: `entries_for` reads the attachments of a page of messages in one query, whatever the
page's size. A deleted message's attachments are removed, files and rows, once the deletion
commits (`discard`); the download view refuses them before that too (`may_download`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.core.files.storage import default_storage
from django.db import connection
from django.urls import reverse

from chat import access, protocol
from chat.models import Attachment, Message, Room
from realtime.rows import Columns

logger = logging.getLogger(__name__)


def entry(attachment: Attachment) -> dict:
    """One attachment as a `message` frame lists it (chat.protocol)."""
    return {
        "id": attachment.pk,
        "name": attachment.name,
        "size": attachment.size,
        "content_type": attachment.content_type,
        "url": reverse("chat:attachment", args=[attachment.pk]),
        "thumbnail_url": (
            reverse("chat:attachment_thumbnail", args=[attachment.pk])
            if attachment.thumbnail
            else None
        ),
        "width": attachment.width,
        "height": attachment.height,
    }


def entries_for(message_ids: Iterable[int]) -> dict[int, list[dict]]:
    """The frame entries of the attachments of these messages, by message id, in one query."""
    ids = list(message_ids)
    found: dict[int, list[dict]] = {}
    if not ids:
        return found
    table = Columns.of(Attachment)  # plain SQL: every history page asks, most find nothing
    message, pk = (connection.ops.quote_name(name) for name in ("message_id", "id"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {table.select('a')} FROM {table.table} a "
            f"WHERE a.{message} IN ({', '.join(['%s'] * len(ids))}) ORDER BY a.{pk}",
            ids,
        )
        for row in cursor.fetchall():
            attachment = table.instance(row)
            found.setdefault(attachment.message_id, []).append(entry(attachment))
    return found


def check_ids(value: Any) -> list[int]:
    """The attachment ids of a client's `message` frame (absent or null: none), or
    ChatError(invalid)."""
    from chat.services import ChatError  # chat.services imports this module

    if value is None:
        return []
    limit = protocol.MAX_ATTACHMENTS_PER_MESSAGE
    if (
        not isinstance(value, list)
        or len(value) > limit
        or any(not isinstance(item, int) or isinstance(item, bool) for item in value)
    ):
        raise ChatError(
            protocol.INVALID, f"'attachments' must be a list of at most {limit} attachment ids."
        )
    if len(set(value)) != len(value):
        raise ChatError(protocol.INVALID, "'attachments' names the same attachment twice.")
    return value


def claim(user: Any, room: Room, message: Message, ids: list[int]) -> list[dict]:
    """Attach the uploads `ids` to the new `message` (call inside its transaction) and return
    their frame entries; ChatError(not_found) when any of them is not the user's
    own unattached upload to `room` (the caller's transaction then rolls the message back).
    Frames list a message's attachments in the order they were uploaded, here as in history."""
    from chat.services import ChatError

    if not ids:
        return []
    claimed = Attachment.objects.filter(
        pk__in=ids, uploader=user, room=room, message__isnull=True
    ).update(message=message)
    if claimed != len(ids):
        raise ChatError(
            protocol.NOT_FOUND,
            "An attachment is not available: upload it again (an upload can be attached once, "
            "by its uploader, in the room it was uploaded to).",
        )
    return [entry(row) for row in Attachment.objects.filter(pk__in=ids).order_by("id")]


def may_download(user: Any, attachment: Attachment) -> bool:
    """Whether `user` may fetch `attachment` now: it is in a room they may read (chat.access, read
    again on every request: a member removed loses access at once), and either belongs to a
    message that is not deleted, or is their own upload not attached yet (its preview)."""
    if not access.can_read(user, attachment.room):
        return False
    if attachment.message_id is None:
        return bool(getattr(user, "is_authenticated", False)) and user.pk == attachment.uploader_id
    return attachment.message.deleted is None


def remove(attachments: Iterable[Attachment]) -> None:
    """Delete the stored files and the rows of `attachments`. A file that cannot be deleted is
    logged and left: its row is gone, so nothing serves it."""
    for attachment in attachments:
        for stored in (attachment.file, attachment.thumbnail):
            if not stored:
                continue
            try:
                default_storage.delete(stored.name)
            except OSError:
                logger.exception("chat: could not delete the attachment file %s", stored.name)
        attachment.delete()


def discard(message_id: int) -> None:
    """Remove the attachments of a deleted message (run once the deletion committed)."""
    remove(Attachment.objects.filter(message_id=message_id))
