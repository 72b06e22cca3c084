"""What an uploaded file is, found from its content: never from its name or the Content-Type the
client sent (both are the uploader's to choose, and a browser would trust neither).

The allow-list, and how each type is recognised::

    image/png         starts with 89 50 4E 47 0D 0A 1A 0A
    image/jpeg        starts with FF D8 FF
    image/gif         starts with "GIF87a" or "GIF89a"
    image/webp        "RIFF", four bytes of length, "WEBP"
    application/pdf   starts with "%PDF-"
    application/zip   starts with "PK\\x03\\x04" (or "PK\\x05\\x06", an empty archive); Office and
                      OpenDocument files are zip archives and are kept as such
    text/plain        the whole file is UTF-8 without NUL or other control characters (tabs,
                      line and page breaks allowed), and does not start with a tag: HTML, SVG and
                      XML are refused (a browser runs script in them)

Images are then opened with Pillow (chat.images), so a file that merely starts like a PNG is
refused there. Anything else is refused with `UnsupportedFile`, whose message says what is
accepted.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass
from typing import BinaryIO


class UnsupportedFile(ValueError):
    """An upload of a type that is not accepted; the message is for the uploader."""


@dataclass(frozen=True)
class FileType:
    """One accepted type: the Content-Type it is served with, and a word for people."""

    content_type: str
    label: str


PNG = FileType("image/png", "PNG image")
JPEG = FileType("image/jpeg", "JPEG image")
GIF = FileType("image/gif", "GIF image")
WEBP = FileType("image/webp", "WebP image")
PDF = FileType("application/pdf", "PDF document")
ZIP = FileType("application/zip", "zip archive")
TEXT = FileType("text/plain; charset=utf-8", "plain text")

ACCEPTED = (PNG, JPEG, GIF, WEBP, PDF, ZIP, TEXT)
ACCEPTED_DESCRIPTION = "images (PNG, JPEG, GIF, WebP), PDF, zip archives and plain UTF-8 text"

_SIGNATURES: tuple[tuple[bytes, FileType], ...] = (
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"GIF87a", GIF),
    (b"GIF89a", GIF),
    (b"%PDF-", PDF),
    (b"PK\x03\x04", ZIP),
    (b"PK\x05\x06", ZIP),
)
# Control characters that plain text does not contain (tab, LF, VT, FF and CR are allowed).
_BINARY_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f]")
_MARKUP_START = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<")
_CHUNK = 64 * 1024


def identify(file: BinaryIO) -> FileType:
    """The accepted type of `file` (read from its start; left at its start again), or
    UnsupportedFile saying why not."""
    file.seek(0)
    head = file.read(_CHUNK)
    file.seek(0)
    if not head:
        raise UnsupportedFile("The file is empty.")
    for signature, file_type in _SIGNATURES:
        if head.startswith(signature):
            return file_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if _MARKUP_START.match(head):
        raise UnsupportedFile(
            "HTML, SVG and XML files are not accepted; zip them to share them as a download."
        )
    if _is_plain_text(file):
        return TEXT
    raise UnsupportedFile(f"This type of file is not accepted. Accepted: {ACCEPTED_DESCRIPTION}.")


def _is_plain_text(file: BinaryIO) -> bool:
    """Whether all of `file` is UTF-8 text without binary control characters."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        while chunk := file.read(_CHUNK):
            if _BINARY_CONTROL.search(decoder.decode(chunk)):
                return False
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    finally:
        file.seek(0)
    return True
