"""chat.image_metadata: the containers rewritten without their metadata, the frames untouched, and
a structure that does not parse refused rather than stored as it came."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from chat import image_metadata
from chat.file_types import UnsupportedFile

STRIPPERS = {
    "GIF": image_metadata.strip_gif,
    "PNG": image_metadata.strip_png,
    "WEBP": image_metadata.strip_webp,
}


def looping_animation(image_format: str) -> bytes:
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "green", "blue")]
    output = io.BytesIO()
    frames[0].save(
        output,
        image_format,
        save_all=True,
        append_images=frames[1:],
        duration=[100, 200, 300],
        loop=0,
    )
    return output.getvalue()


@pytest.mark.parametrize("image_format", sorted(STRIPPERS))
def test_frames_timing_and_loop_survive(image_format):
    data = looping_animation(image_format)
    stripped = Image.open(io.BytesIO(STRIPPERS[image_format](data)))
    original = Image.open(io.BytesIO(data))
    assert stripped.n_frames == original.n_frames == 3
    assert stripped.info.get("loop") == original.info.get("loop")
    for frame in range(3):
        for image in (stripped, original):
            image.seek(frame)
            image.load()
        assert stripped.info["duration"] == original.info["duration"]
        assert stripped.convert("RGB").tobytes() == original.convert("RGB").tobytes()


@pytest.mark.parametrize("image_format", sorted(STRIPPERS))
def test_a_cut_file_is_refused(image_format):
    data = looping_animation(image_format)
    with pytest.raises(UnsupportedFile, match="could not be read"):
        STRIPPERS[image_format](data[: len(data) // 2])
