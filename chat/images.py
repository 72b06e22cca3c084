"""Uploaded images, with Pillow: checked to be what their first bytes claim, stripped of their
metadata, and given a thumbnail.

A photo's EXIF block can hold where and when it was taken and with which device; a chat
attachment must not pass that on. So every still image is stored re-saved without it: a JPEG
keeps its own quantisation tables (``quality="keep"``: no visible loss) unless its EXIF
orientation had to be applied to the pixels first; a PNG is re-saved losslessly; a WebP is
re-encoded. Colour profiles (ICC) are kept: they carry no personal data and the colours depend
on them. An animated GIF or WebP is kept as uploaded (GIF has no EXIF; re-encoding animations
would cost more than it is worth), and only its first frame becomes the thumbnail.

Decompression bombs: a small file may declare a huge canvas. The pixel count is read from the
header and refused over MAX_PIXELS before any pixel is decoded (Pillow's own, higher limit,
DecompressionBombError, is caught too). No global Pillow setting is changed: uploads are handled
in several threads at once.

Thumbnails are WebP, at most THUMBNAIL_MAX_SIDE pixels on a side, never larger than the image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageOps

from chat import protocol
from chat.file_types import GIF, JPEG, PNG, WEBP, FileType, UnsupportedFile

MAX_PIXELS = 40_000_000  # 40 megapixels: more than any phone camera, far below a bomb
_PILLOW_FORMATS = {PNG: "PNG", JPEG: "JPEG", GIF: "GIF", WEBP: "WEBP"}
_EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ProcessedImage:
    """An uploaded image ready to store: its bytes (metadata removed), its thumbnail (WebP) and
    its size in pixels as shown (orientation applied)."""

    data: bytes
    thumbnail: bytes
    width: int
    height: int


def process(file: BinaryIO, file_type: FileType) -> ProcessedImage:
    """Check, strip and thumbnail the image in `file`, whose first bytes said `file_type`; raises
    UnsupportedFile when it is not a readable image of that type or has too many pixels."""
    expected = _PILLOW_FORMATS[file_type]
    file.seek(0)
    try:
        image = Image.open(file, formats=[expected])  # reads the header only
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise UnsupportedFile(
                f"The image is {width} x {height} pixels; at most {MAX_PIXELS // 1_000_000} "
                "megapixels are accepted."
            )
        image.load()
    except UnsupportedFile:
        raise
    except Image.DecompressionBombError:
        raise UnsupportedFile("The image has too many pixels to be accepted.") from None
    except Exception:
        raise UnsupportedFile(
            f"The file starts like a {file_type.label} but could not be read as one."
        ) from None
    animated = getattr(image, "is_animated", False)
    oriented = ImageOps.exif_transpose(image)
    data = _original(file, image, oriented, expected, animated)
    return ProcessedImage(data, _thumbnail(oriented), oriented.width, oriented.height)


def _original(
    file: BinaryIO, image: Image.Image, oriented: Image.Image, kind: str, animated: bool
) -> bytes:
    """The bytes to store for the uploaded image: metadata removed (see the module docstring)."""
    if kind == "GIF" or animated:
        file.seek(0)
        return file.read()
    output = io.BytesIO()
    options: dict = {}
    if image.info.get("icc_profile"):
        options["icc_profile"] = image.info["icc_profile"]
    if kind == "JPEG":
        turned = image.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None)
        if turned:
            oriented.save(output, "JPEG", quality=92, **options)
        else:
            image.save(output, "JPEG", quality="keep", subsampling="keep", **options)
    elif kind == "PNG":
        oriented.save(output, "PNG", **options)
    else:
        oriented.save(output, "WEBP", quality=90, **options)
    return output.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    """A WebP of the (first frame of the) image, fitting THUMBNAIL_MAX_SIDE, without metadata."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    small = image.convert("RGBA" if has_alpha else "RGB")
    side = protocol.THUMBNAIL_MAX_SIDE
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    output = io.BytesIO()
    small.save(output, "WEBP", quality=80)
    return output.getvalue()
