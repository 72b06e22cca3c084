"""Attachments in real Chromium against a real Daphne, two people side by side: one uploads an
image and a file, the other sees the thumbnail and downloads the file; a refused type says why;
a file dropped on the composer is sent without text."""

import io
import os
from pathlib import Path

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import expect

from chat.tests.conftest import message_item

ROOM_PAGE = "/rooms/files/"  # what open_page(user) opens
AGENDA = b"Agenda\n1. Harbour walk\n2. Lunch at noon\n"


@pytest.fixture(scope="module")
def site(live_server):
    live_server.shell(
        "from chat.models import Room\nRoom.objects.get_or_create(slug='files', title='Files')"
    )
    keys = {name: live_server.create_user(name) for name in ("lena", "milo", "nico")}
    return live_server, keys


def harbour_png() -> bytes:
    """A small picture: sky, sea and a sail."""
    image = Image.new("RGB", (900, 600), "#8ecae6")
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 380, 900, 600), fill="#219ebc")
    draw.polygon([(420, 140), (420, 360), (560, 360)], fill="#ffb703")
    draw.rectangle((380, 360, 600, 390), fill="#023047")
    output = io.BytesIO()
    image.save(output, "PNG")
    return output.getvalue()


def ready_chips(page):
    return page.locator(".attachment-chip:not(.is-uploading):not(.is-failed)")


def test_an_image_and_a_file_reach_the_other_reader_who_downloads_the_file(open_page, tmp_path):
    picture, agenda = tmp_path / "harbour.png", tmp_path / "agenda.txt"
    picture.write_bytes(harbour_png())
    agenda.write_bytes(AGENDA)
    lena, milo = open_page("lena"), open_page("milo")
    lena.set_input_files("[data-attach-input]", [str(picture), str(agenda)])
    expect(ready_chips(lena)).to_have_count(2)
    lena.fill("[data-composer-text]", "The harbour, and the agenda for Friday")
    lena.press("[data-composer-text]", "Enter")
    expect(lena.locator("[data-attachment-tray]")).to_be_hidden()

    shared = message_item(milo, "the agenda for Friday")
    thumbnail = shared.locator(".attachment-image img")
    expect(thumbnail).to_have_attribute("alt", "harbour.png")
    milo.wait_for_function(
        "image => image.complete && image.naturalWidth > 0", arg=thumbnail.element_handle()
    )
    full = milo.request.get(shared.locator(".attachment-image").evaluate("link => link.href"))
    assert full.status == 200 and full.headers["content-type"] == "image/png"

    file_link = shared.locator(".attachment-file")
    expect(file_link).to_contain_text("agenda.txt")
    expect(file_link.locator(".attachment-size")).to_have_text(f"{len(AGENDA)} bytes")
    with milo.expect_download() as started:
        file_link.click()
    download = started.value
    assert download.suggested_filename == "agenda.txt"
    assert Path(download.path()).read_bytes() == AGENDA

    # For the docs (SWITCHBOARD_SCREENSHOT_DIR, e.g. docs/images/).
    out = Path(os.environ.get("SWITCHBOARD_SCREENSHOT_DIR") or tmp_path)
    lena.set_viewport_size({"width": 1280, "height": 720})
    lena.set_input_files("[data-attach-input]", [str(agenda)])  # the next one, waiting to be sent
    expect(ready_chips(lena)).to_have_count(1)
    expect(
        message_item(lena, "the agenda for Friday").locator(".attachment-image img")
    ).to_be_visible()
    lena.screenshot(path=str(out / "chat-attachments.png"))
    assert (out / "chat-attachments.png").stat().st_size > 10_000


def test_a_refused_type_says_why_and_sends_nothing(open_page, tmp_path):
    fake = tmp_path / "drawing.png"
    fake.write_bytes(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>')
    nico = open_page("nico")
    nico.set_input_files("[data-attach-input]", [str(fake)])
    failed = nico.locator(".attachment-chip.is-failed")
    expect(failed).to_contain_text("HTML, SVG and XML files are not accepted")
    nico.press("[data-composer-text]", "Enter")  # no text and no file ready: nothing to send
    expect(nico.locator(".message.is-pending")).to_have_count(0)
    failed.locator(".attachment-remove").click()
    expect(nico.locator("[data-attachment-tray]")).to_be_hidden()


def test_a_file_dropped_on_the_composer_is_sent_without_text(open_page):
    lena, nico = open_page("lena"), open_page("nico")
    lena.evaluate(
        """() => {
          const data = new DataTransfer();
          data.items.add(new File(["minutes of the meeting\\n"], "minutes.txt",
                                  {type: "text/plain"}));
          const composer = document.querySelector("[data-composer]");
          composer.dispatchEvent(new DragEvent("drop", {dataTransfer: data, bubbles: true,
                                                        cancelable: true}));
        }"""
    )
    expect(ready_chips(lena)).to_have_count(1)
    lena.press("[data-composer-text]", "Enter")
    received = nico.locator(".message:not(.is-pending) .attachment-file", has_text="minutes.txt")
    expect(received).to_be_visible()
