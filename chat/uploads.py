"""Storing an uploaded file as an `Attachment`: the checks, in order, and the writes.

1. The uploader is logged in and may read the room (chat.access).
2. The file is at most ``settings.CHAT_ATTACHMENT_MAX_BYTES`` (SWITCHBOARD_ATTACHMENT_MAX_BYTES).
   `manage.py serve` already refused a larger body before reading it (the upload URL has its own
   limit in REALTIME_REQUEST_BODY_LIMITS); this check is for every other server.
3. The uploader has fewer than MAX_PENDING_UPLOADS uploads not attached to a message yet (older
   ones than PENDING_LIFETIME are removed first): uploading is not free storage.
4. Its content is of an accepted type (chat.file_types); an image is opened, stripped of its
   metadata and given a thumbnail (chat.images).
5. The bytes go to Django's default storage (``MEDIA_ROOT`` with the default file system storage;
   any storage backend works) under a random key, then the row is saved. If saving the row fails
   the files are deleted again: nothing is stored for a refused or failed upload.

A refusal is `UploadRefused` with the HTTP status the upload view answers and a message for
people.
"""

from __future__ import annotations

import secrets
import unicodedata
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile, File
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.utils import timezone

from chat import access, attachments, file_types, images, protocol
from chat.models import Attachment, Room

MAX_PENDING_UPLOADS = 20
PENDING_LIFETIME = timedelta(days=1)
STORAGE_FOLDER = "chat/attachments"


class UploadRefused(Exception):
    """An upload the server does not store: `status` for the HTTP answer, `detail` for people."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def max_bytes() -> int:
    return int(settings.CHAT_ATTACHMENT_MAX_BYTES)


def describe_size(size: int) -> str:
    """`size` bytes for people: "10 MB", "512 KB", "12 bytes"."""
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.3g} MB"
    if size >= 1024:
        return f"{size / 1024:.3g} KB"
    return f"{size} bytes"


def too_large(size: int | None = None) -> UploadRefused:
    got = f" (this one is {describe_size(size)})" if size else ""
    return UploadRefused(413, f"Files can be at most {describe_size(max_bytes())}{got}.")


def clean_name(name: str | None) -> str:
    """The name to show and to download a file as: the last part of what the client sent,
    without control or formatting characters (a right-to-left override could disguise an
    extension), cut to MAX_ATTACHMENT_NAME_LENGTH keeping its extension; "file" when nothing is
    left."""
    base = (name or "").replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    limit = protocol.MAX_ATTACHMENT_NAME_LENGTH
    if len(base) > limit:
        stem, dot, extension = base.rpartition(".")
        if dot and 0 < len(extension) <= 10:
            base = stem[: limit - len(extension) - 1] + "." + extension
        else:
            base = base[:limit]
    return base.strip(" .") or "file"


def _make_room_for_one_more(user: Any) -> None:
    """Drop the user's stale unattached uploads; refuse when too many fresh ones remain."""
    pending = Attachment.objects.filter(uploader=user, message__isnull=True)
    attachments.remove(pending.filter(created__lt=timezone.now() - PENDING_LIFETIME))
    if pending.count() >= MAX_PENDING_UPLOADS:
        raise UploadRefused(
            429,
            f"You have {MAX_PENDING_UPLOADS} uploads not sent in a message yet; send or remove "
            "some first.",
        )


def store_upload(user: Any, room: Room, upload: UploadedFile) -> Attachment:
    """Check `upload` and store it as the user's attachment to `room` (not attached to any
    message yet); UploadRefused when it is not stored."""
    if not getattr(user, "is_authenticated", False):
        raise UploadRefused(403, "Log in to upload files.")
    if not access.can_read(user, room):
        raise UploadRefused(404, f"There is no room {room.slug!r}.")
    if upload.size is None or upload.size > max_bytes():
        raise too_large(upload.size)
    _make_room_for_one_more(user)
    try:
        file_type = file_types.identify(upload)
        processed = None
        if file_type.content_type in protocol.IMAGE_CONTENT_TYPES:
            processed = images.process(upload, file_type)
    except file_types.UnsupportedFile as refusal:
        raise UploadRefused(415, str(refusal)) from None
    if processed is not None and len(processed.data) > max_bytes():
        raise too_large(len(processed.data))

    key = secrets.token_urlsafe(24)
    folder = f"{STORAGE_FOLDER}/{key[:2]}"
    saved: list[str] = []
    try:
        upload.seek(0)
        content = ContentFile(processed.data) if processed is not None else File(upload)
        saved.append(default_storage.save(f"{folder}/{key}", content))
        if processed is not None:
            thumbnail = ContentFile(processed.thumbnail)
            saved.append(default_storage.save(f"{folder}/{key}-thumbnail.webp", thumbnail))
        return Attachment.objects.create(
            key=key,
            room=room,
            uploader=user,
            name=clean_name(upload.name),
            content_type=file_type.content_type,
            size=len(processed.data) if processed is not None else upload.size,
            file=saved[0],
            thumbnail=saved[1] if len(saved) > 1 else "",
            width=processed.width if processed is not None else None,
            height=processed.height if processed is not None else None,
        )
    except BaseException:
        for name in saved:
            default_storage.delete(name)
        raise
