"""Uploaded images, with Pillow: checked to be what their first bytes claim, stripped of their
metadata, and given a thumbnail.

A photo's EXIF block can hold where and when it was taken and with which device; a chat
attachment must not pass that on. So every still image is stored re-saved without it: a JPEG
keeps its own quantisation tables (``quality="keep"``: no visible loss) unless its EXIF
orientation had to be applied to the pixels first; a PNG is re-saved losslessly; a WebP is
re-encoded. Colour profiles (ICC) are kept: they carry no personal data and the colours depend
on them. A GIF and an animated PNG or WebP keep their frames as uploaded (re-encoding
animations would cost more than it is worth) with their metadata taken out of the container
(chat.image_metadata: EXIF, XMP, text and comments), and only the first frame becomes the
thumbnail.

Decompression bombs: a small file may declare a huge canvas. The pixel count is read from the
header and refused over MAX_PIXELS (MAX_ANIMATED_PIXELS for an animation) before any pixel is
decoded (Pillow's own, higher limit, DecompressionBombError, is caught too). No global Pillow
setting is changed: uploads are handled in several threads at once.

Decoding is the costly part: a 130 KB PNG of one colour can declare 39 megapixels, and decoding,
re-saving and thumbnailing it took 2 seconds and 460 MB. So at most MAX_DECODING images are
processed at once in a process (others wait up to DECODE_WAIT_SECONDS, then `ImagesBusy`), and
the pixels are copied as little as possible (the thumbnail is made from the decoded image itself,
the orientation is applied only when the EXIF asks for it): a handful of such uploads at once
would otherwise take all the memory of a small server.

Thumbnails are WebP, at most THUMBNAIL_MAX_SIDE pixels on a side, never larger than the image.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageOps

from chat import image_metadata, protocol
from chat.file_types import GIF, JPEG, PNG, WEBP, FileType, UnsupportedFile

MAX_PIXELS = 40_000_000  # 40 megapixels: more than any phone camera, far below a bomb
# An animation's canvas: decoding one frame of an animated WebP takes three canvases (a 40
# megapixel one of a few hundred bytes cost 600 MB), and viewers decode every frame at that size.
MAX_ANIMATED_PIXELS = 10_000_000
MAX_DECODING = 2  # images decoded at once in one process
DECODE_WAIT_SECONDS = 30.0
_decoding = threading.BoundedSemaphore(MAX_DECODING)
_PILLOW_FORMATS = {PNG: "PNG", JPEG: "JPEG", GIF: "GIF", WEBP: "WEBP"}
_EXIF_ORIENTATION = 0x0112
# Stored with their frames as uploaded, the metadata taken out of the container.
_KEPT_AS_UPLOADED = {
    "GIF": image_metadata.strip_gif,
    "PNG": image_metadata.strip_png,
    "WEBP": image_metadata.strip_webp,
}


class ImagesBusy(Exception):
    """No decoding slot came free within DECODE_WAIT_SECONDS; the upload may be tried again."""


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
    UnsupportedFile when it is not a readable image of that type or has too many pixels, and
    ImagesBusy when MAX_DECODING others are being processed for longer than DECODE_WAIT_SECONDS."""
    if not _decoding.acquire(timeout=DECODE_WAIT_SECONDS):
        raise ImagesBusy("The server is busy with other images; try again in a moment.")
    try:
        return _process(file, file_type)
    finally:
        _decoding.release()


def _process(file: BinaryIO, file_type: FileType) -> ProcessedImage:
    expected = _PILLOW_FORMATS[file_type]
    file.seek(0)
    try:
        image = Image.open(file, formats=[expected])  # reads the header only
        width, height = image.size
        animated = getattr(image, "is_animated", False)
        limit = MAX_ANIMATED_PIXELS if animated else MAX_PIXELS
        if width * height > limit:
            kind = "animated images" if animated else "images"
            raise UnsupportedFile(
                f"The image is {width} x {height} pixels; {kind} of at most "
                f"{limit // 1_000_000} megapixels are accepted."
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
    turned = image.getexif().get(_EXIF_ORIENTATION, 1) not in (1, None)
    oriented = ImageOps.exif_transpose(image) if turned else image
    data = _original(file, image, oriented, expected, animated, turned)
    width, height = oriented.size
    return ProcessedImage(data, _thumbnail(oriented), width, height)


def _original(
    file: BinaryIO,
    image: Image.Image,
    oriented: Image.Image,
    kind: str,
    animated: bool,
    turned: bool,
) -> bytes:
    """The bytes to store for the uploaded image: metadata removed (see the module docstring)."""
    if kind == "GIF" or (animated and kind in _KEPT_AS_UPLOADED):
        file.seek(0)
        return _KEPT_AS_UPLOADED[kind](file.read())
    output = io.BytesIO()
    options: dict = {}
    if image.info.get("icc_profile"):
        options["icc_profile"] = image.info["icc_profile"]
    if kind == "JPEG":
        # An MPO (several pictures in one JPEG, as some cameras save) cannot keep the tables of
        # a single JPEG: its first picture is re-encoded, like a turned one.
        if turned or image.format != "JPEG":
            oriented.save(output, "JPEG", quality=92, **options)
        else:
            image.save(output, "JPEG", quality="keep", subsampling="keep", **options)
    elif kind == "PNG":
        oriented.save(output, "PNG", **options)
    else:
        oriented.save(output, "WEBP", quality=90, **options)
    return output.getvalue()


def _thumbnail(image: Image.Image) -> bytes:
    """A WebP of the (first frame of the) image, fitting THUMBNAIL_MAX_SIDE, without metadata.
    Shrinks `image` itself when it is RGB or RGBA already (no copy of a large image's pixels):
    call it last."""
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "RGBA" if has_alpha else "RGB"
    small = image if image.mode == mode else image.convert(mode)
    side = protocol.THUMBNAIL_MAX_SIDE
    small.thumbnail((side, side), Image.Resampling.LANCZOS)
    output = io.BytesIO()
    small.save(output, "WEBP", quality=80)
    return output.getvalue()
