"""Metadata removed from images that are stored without being re-encoded: GIFs, and animated PNG
and WebP files (chat.images keeps their frames as uploaded). Only the container is rewritten;
the frames' bytes are copied as they are.

What goes, per format (everything else is copied unchanged):

- PNG (and APNG): the chunks ``eXIf`` (EXIF: camera, time, GPS position), ``tEXt``, ``zTXt``,
  ``iTXt`` (text, XMP among it) and ``tIME``.
- WebP: the RIFF chunks ``EXIF`` and ``XMP ``, and their two flags in the ``VP8X`` header.
- GIF: comment extensions, application extensions other than the loop count (``NETSCAPE2.0``,
  ``ANIMEXTS1.0``) such as ``XMP DataXMP``, and any bytes after the trailer (which is where a
  GIF/HTML polyglot keeps its page).

A file whose structure does not parse is `UnsupportedFile`: it is not stored rather than stored
with what it may carry.
"""

from __future__ import annotations

import struct

from chat.file_types import UnsupportedFile

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_DROPPED = {b"eXIf", b"tEXt", b"zTXt", b"iTXt", b"tIME"}
WEBP_DROPPED = {b"EXIF", b"XMP "}
WEBP_METADATA_FLAGS = 0x08 | 0x04  # VP8X: EXIF present, XMP present
GIF_KEPT_APPLICATIONS = {b"NETSCAPE2.0", b"ANIMEXTS1.0"}


def _broken(label: str) -> UnsupportedFile:
    return UnsupportedFile(f"The file starts like a {label} but could not be read as one.")


def strip_png(data: bytes) -> bytes:
    """`data` (a PNG or APNG) without its metadata chunks."""
    if not data.startswith(PNG_SIGNATURE):
        raise _broken("PNG image")
    kept = [PNG_SIGNATURE]
    position = len(PNG_SIGNATURE)
    while position < len(data):
        if position + 12 > len(data):
            raise _broken("PNG image")
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        end = position + 12 + length
        if end > len(data):
            raise _broken("PNG image")
        if kind not in PNG_DROPPED:
            kept.append(data[position:end])
        position = end
        if kind == b"IEND":
            break
    return b"".join(kept)


def strip_webp(data: bytes) -> bytes:
    """`data` (a WebP) without its EXIF and XMP chunks."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        raise _broken("WebP image")
    (riff_size,) = struct.unpack("<I", data[4:8])
    end_of_riff = min(len(data), 8 + riff_size)
    kept = []
    position = 12
    while position + 8 <= end_of_riff:
        kind = data[position : position + 4]
        (length,) = struct.unpack("<I", data[position + 4 : position + 8])
        end = position + 8 + length + (length & 1)
        if end > end_of_riff:
            raise _broken("WebP image")
        chunk = data[position:end]
        if kind == b"VP8X" and length >= 1:
            chunk = chunk[:8] + bytes([chunk[8] & ~WEBP_METADATA_FLAGS & 0xFF]) + chunk[9:]
        if kind not in WEBP_DROPPED:
            kept.append(chunk)
        position = end
    body = b"WEBP" + b"".join(kept)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _sub_blocks_end(data: bytes, position: int) -> int:
    """Where the GIF data sub-blocks starting at `position` end (after their 0 terminator)."""
    while True:
        if position >= len(data):
            raise _broken("GIF image")
        size = data[position]
        position += 1 + size
        if size == 0:
            return position


def strip_gif(data: bytes) -> bytes:
    """`data` (a GIF) without comments, metadata application blocks, or bytes after its end."""
    if len(data) < 13 or data[:6] not in (b"GIF87a", b"GIF89a"):
        raise _broken("GIF image")
    flags = data[10]
    position = 13 + (3 * 2 ** ((flags & 0x07) + 1) if flags & 0x80 else 0)
    kept = [data[:position]]
    while True:
        if position >= len(data):
            raise _broken("GIF image")
        introducer = data[position]
        if introducer == 0x3B:  # trailer: the end, whatever follows it
            kept.append(b"\x3b")
            return b"".join(kept)
        if introducer == 0x2C:  # an image: descriptor, local colour table, LZW data
            if position + 10 > len(data):
                raise _broken("GIF image")
            local = data[position + 9]
            start = position
            position += 10 + (3 * 2 ** ((local & 0x07) + 1) if local & 0x80 else 0)
            end = _sub_blocks_end(data, position + 1)  # after the LZW minimum code size
            kept.append(data[start:end])
            position = end
        elif introducer == 0x21:  # an extension: label, then sub-blocks
            if position + 2 > len(data):
                raise _broken("GIF image")
            label = data[position + 1]
            end = _sub_blocks_end(data, position + 2)
            identifier = data[position + 3 : position + 3 + data[position + 2]]
            dropped = label == 0xFE or (label == 0xFF and identifier not in GIF_KEPT_APPLICATIONS)
            if not dropped:
                kept.append(data[position:end])
            position = end
        else:
            raise _broken("GIF image")
