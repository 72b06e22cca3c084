"""Attachments: the upload's checks (size, type by content), images stripped and thumbnailed,
attaching only your own unused uploads, the `attachments` of message frames and history, and
downloads with safe headers that stop when the message is deleted. Who may read a private room's
files is proven in test_access.py with the other membership checks."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from PIL import Image

from chat import protocol, services
from chat.models import Attachment, Message
from chat.services import ChatError
from chat.tests.conftest import join_room, next_of_type, png_bytes, upload
from chat.uploads import clean_name
from realtime.request_body import max_request_body

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("media_root")]


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def stored_files(media_root) -> list:
    return [path for path in media_root.rglob("*") if path.is_file()] if media_root.exists() else []


def jpeg_with_exif() -> bytes:
    """A JPEG whose EXIF names a camera and a place (GPS), and says "rotate 90°" (orientation 6)."""
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."  # Make
    exif[0x0112] = 6  # Orientation: the pixels are stored turned
    exif[0x8825] = {1: "N", 2: (59.0, 19.0, 48.0)}  # GPS IFD: latitude
    output = io.BytesIO()
    Image.new("RGB", (1200, 800), "orange").save(output, "JPEG", exif=exif.tobytes())
    return output.getvalue()


def uploaded(user, room, name: str, data: bytes) -> dict:
    response = upload(client_for(user), room.slug, name, data)
    assert response.status_code == 201, response.content
    return response.json()["attachment"]


def body(response) -> bytes:
    return b"".join(response.streaming_content)


# --- uploading ---------------------------------------------------------------------------------


def test_an_image_is_stored_without_its_exif_and_gets_a_thumbnail(room, alice):
    entry = uploaded(alice, room, "holiday.jpg", jpeg_with_exif())
    assert entry["content_type"] == "image/jpeg"
    assert (entry["width"], entry["height"]) == (800, 1200)  # the orientation is applied
    assert entry["url"] == f"/attachments/{entry['id']}/"
    assert entry["thumbnail_url"] == f"/attachments/{entry['id']}/thumbnail/"

    client = client_for(alice)  # the uploader sees her upload before it is sent
    original = Image.open(io.BytesIO(body(client.get(entry["url"]))))
    assert dict(original.getexif()) == {}
    assert "exif" not in original.info
    assert original.size == (800, 1200)
    thumbnail = client.get(entry["thumbnail_url"])
    assert thumbnail["Content-Type"] == "image/webp"
    small = Image.open(io.BytesIO(body(thumbnail)))
    assert small.format == "WEBP"
    assert small.size == (320, protocol.THUMBNAIL_MAX_SIDE)
    assert dict(small.getexif()) == {}


def test_a_file_over_the_limit_is_refused_with_413_and_nothing_is_stored(
    room, alice, settings, media_root
):
    settings.CHAT_ATTACHMENT_MAX_BYTES = 1000
    response = upload(client_for(alice), room.slug, "big.txt", b"a" * 1001, "text/plain")
    assert response.status_code == 413
    assert response.json() == {"error": "Files can be at most 1000 bytes (this one is 1001 bytes)."}
    assert Attachment.objects.count() == 0
    assert stored_files(media_root) == []


@pytest.mark.parametrize(
    ("name", "data", "claimed", "says"),
    [
        ("cat.png", b"<html><script>alert(1)</script></html>", "image/png", "HTML, SVG"),
        ("logo.png", b'<svg xmlns="http://www.w3.org/2000/svg"></svg>', "image/svg+xml", "SVG"),
        ("notes.txt", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00", "text/plain", "not accepted"),
        ("photo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "image/png", "could not be read"),
        ("empty.txt", b"", "text/plain", "empty"),
    ],
    ids=["html-as-png", "svg", "executable-as-text", "broken-png", "empty"],
)
def test_a_type_is_judged_by_content_and_refused_with_415(
    room, alice, media_root, name, data, claimed, says
):
    response = upload(client_for(alice), room.slug, name, data, claimed)
    assert response.status_code == 415
    assert says in response.json()["error"]
    assert Attachment.objects.count() == 0
    assert stored_files(media_root) == []


def test_a_decompression_bomb_is_refused_before_it_is_decoded(room, alice):
    output = io.BytesIO()
    Image.new("1", (9000, 9000)).save(output, "PNG")  # 81 megapixels in a few kilobytes
    response = upload(client_for(alice), room.slug, "bomb.png", output.getvalue())
    assert response.status_code == 415
    assert "megapixels" in response.json()["error"]


def test_an_animation_on_a_huge_canvas_is_refused_before_it_is_decoded(room, alice):
    """Two 16 x 16 frames on a 6000 x 6600 canvas, a few hundred bytes: decoding its first frame
    took 600 MB (an animated WebP decodes onto three canvases)."""
    output = io.BytesIO()
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
    frames[0].save(output, "WEBP", save_all=True, append_images=frames[1:], duration=100)
    data = bytearray(output.getvalue())
    header = data.index(b"VP8X") + 8  # flags (4 bytes), then width - 1 and height - 1 (3 each)
    data[header + 4 : header + 10] = (5999).to_bytes(3, "little") + (6599).to_bytes(3, "little")
    assert Image.open(io.BytesIO(bytes(data))).size == (6000, 6600)
    response = upload(client_for(alice), room.slug, "moving.webp", bytes(data))
    assert response.status_code == 415
    assert "animated images of at most 10 megapixels" in response.json()["error"]


def test_an_upload_needs_a_login_and_one_file(room, alice):
    anonymous = upload(Client(), room.slug, "a.txt", b"hello")
    assert anonymous.status_code == 403
    assert anonymous.json()["error"] == "Log in to upload files."
    none = client_for(alice).post(f"/rooms/{room.slug}/attachments/", {})
    assert none.status_code == 400
    assert Attachment.objects.count() == 0


def test_a_muted_user_cannot_upload(room, alice, bob, moderator, media_root):
    """Uploading is the first step of posting: a user muted here, or everywhere, stores
    nothing (the 20 pending uploads and the daily quota would otherwise be theirs to spend)."""
    services.mute_user(moderator, "alice", room.slug, 10)
    refused = upload(client_for(alice), room.slug, "a.txt", b"words\n")
    assert refused.status_code == 403
    assert "muted" in refused.json()["error"]
    services.mute_user(moderator, "bob", None, 10)
    assert upload(client_for(bob), room.slug, "b.txt", b"words\n").status_code == 403
    assert Attachment.objects.count() == 0 and stored_files(media_root) == []


def test_names_lose_their_path_and_control_characters(room, alice):
    entry = uploaded(alice, room, "../../etc/re\u202eport\u202c.txt", b"plain words\n")
    assert entry["name"] == "report.txt"
    assert entry["content_type"] == "text/plain; charset=utf-8"


# --- attaching ---------------------------------------------------------------------------------


def test_a_message_lists_its_attachments_in_its_frame_and_in_history(room, alice, bob):
    picture = uploaded(alice, room, "cake.png", png_bytes())
    notes = uploaded(alice, room, "notes.txt", b"bring forks\n")
    event = services.post_message(
        alice, room, "", "c-1", attachment_ids=[notes["id"], picture["id"]]
    )
    # In the order they were uploaded, whatever order the client named them in.
    assert [item["name"] for item in event.frame["attachments"]] == ["cake.png", "notes.txt"]
    assert event.frame["attachments"][0] == picture
    page = services.history_page(bob, room)
    assert page["messages"][-1]["attachments"] == event.frame["attachments"]
    caught_up = services.events_between(bob, room, event.seq - 1, event.seq)
    assert caught_up[0]["attachments"] == event.frame["attachments"]


def test_a_history_page_reads_attachments_in_one_query_whatever_its_size(room, alice):
    def page_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            services.history_page(alice, room)
        return len(queries)

    for index in range(2):
        entry = uploaded(alice, room, f"{index}.txt", b"words\n")
        services.post_message(alice, room, f"file {index}", attachment_ids=[entry["id"]])
    few = page_queries()
    for index in range(2, 12):
        entry = uploaded(alice, room, f"{index}.txt", b"words\n")
        services.post_message(alice, room, f"file {index}", attachment_ids=[entry["id"]])
    assert page_queries() == few


def test_only_your_own_unused_upload_to_this_room_can_be_attached(room, alice, bob):
    other_room = type(room).objects.create(slug="other")
    hers = uploaded(alice, room, "hers.txt", b"mine\n")
    elsewhere = uploaded(bob, other_room, "there.txt", b"other room\n")
    cases = [
        (bob, [hers["id"]]),  # someone else's upload
        (bob, [elsewhere["id"]]),  # his own, but uploaded to another room
        (bob, [999_999]),  # no such upload
    ]
    for user, ids in cases:
        with pytest.raises(ChatError) as refused:
            services.post_message(user, room, "look", attachment_ids=ids)
        assert refused.value.code == protocol.NOT_FOUND
    assert Message.objects.count() == 0  # nothing was posted, no seq was used
    room.refresh_from_db()
    assert room.seq == 0
    services.post_message(alice, room, "first use", attachment_ids=[hers["id"]])
    with pytest.raises(ChatError) as again:
        services.post_message(alice, room, "second use", attachment_ids=[hers["id"]])
    assert again.value.code == protocol.NOT_FOUND


@pytest.mark.parametrize(
    "value",
    [5, "5", [True], ["5"], [1, 1], list(range(protocol.MAX_ATTACHMENTS_PER_MESSAGE + 1))],
)
def test_malformed_attachment_lists_are_invalid(room, alice, value):
    with pytest.raises(ChatError) as refused:
        services.post_message(alice, room, "text", attachment_ids=value)
    assert refused.value.code == protocol.INVALID


def test_only_a_message_with_attachments_may_have_no_text(room, alice):
    with pytest.raises(ChatError) as refused:
        services.post_message(alice, room, "  ", attachment_ids=[])
    assert refused.value.code == protocol.EMPTY
    entry = uploaded(alice, room, "only.txt", b"just the file\n")
    event = services.post_message(alice, room, "", attachment_ids=[entry["id"]])
    assert event.frame["text"] == ""


def test_a_socket_message_with_attachments_reaches_the_room(room, alice, bob):
    entry = uploaded(alice, room, "cake.png", png_bytes())

    async def scenario():
        sender, _ = await join_room("general", alice)
        reader, _ = await join_room("general", bob)
        await sender.send_json_to(
            {"type": "message", "text": "", "client_id": "c-9", "attachments": [entry["id"]]}
        )
        frame = await next_of_type(reader, protocol.MESSAGE)
        await sender.send_json_to(
            {"type": "message", "text": "again", "attachments": [entry["id"]]}
        )
        error = await next_of_type(sender, protocol.ERROR)
        await sender.disconnect()
        await reader.disconnect()
        return frame, error

    frame, error = asyncio.run(scenario())
    assert frame["attachments"] == [entry]
    assert error["code"] == protocol.NOT_FOUND


# --- downloading -------------------------------------------------------------------------------


def test_a_file_is_a_download_and_an_image_is_inline_with_safe_headers(room, alice, bob):
    notes = uploaded(alice, room, "notes é.txt", b"plain, with a <b> tag inside\n")
    picture = uploaded(alice, room, "cake.png", png_bytes())
    services.post_message(alice, room, "files", attachment_ids=[notes["id"], picture["id"]])
    reader = client_for(bob)

    text = reader.get(notes["url"])
    assert text.status_code == 200
    assert text["Content-Type"] == "text/plain; charset=utf-8"
    assert text["Content-Disposition"] == ("attachment; filename*=utf-8''notes%20%C3%A9.txt")
    assert body(text) == b"plain, with a <b> tag inside\n"
    image = reader.get(picture["url"])
    assert image["Content-Type"] == "image/png"
    assert image["Content-Disposition"].startswith("inline")
    for response in (text, image):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert "sandbox" in response["Content-Security-Policy"]
        assert response["Cache-Control"] == "private, no-cache"
    again = reader.get(picture["url"], HTTP_IF_NONE_MATCH=image["ETag"])
    assert again.status_code == 304
    assert reader.get(notes["thumbnail_url"] or f"{notes['url']}thumbnail/").status_code == 404


def test_an_unsent_upload_is_served_to_its_uploader_only(room, alice, bob):
    entry = uploaded(alice, room, "draft.txt", b"not sent yet\n")
    assert client_for(alice).get(entry["url"]).status_code == 200
    assert client_for(bob).get(entry["url"]).status_code == 404
    assert Client().get(entry["url"]).status_code == 404


def test_the_files_of_a_deleted_message_are_no_longer_served(room, alice, bob, media_root):
    entry = uploaded(alice, room, "cake.png", png_bytes())
    event = services.post_message(alice, room, "soon gone", attachment_ids=[entry["id"]])
    reader = client_for(bob)
    assert reader.get(entry["thumbnail_url"]).status_code == 200
    services.delete_message(alice, event.frame["id"], room)
    assert reader.get(entry["url"]).status_code == 404
    assert reader.get(entry["thumbnail_url"]).status_code == 404
    assert client_for(alice).get(entry["url"]).status_code == 404
    assert stored_files(media_root) == []
    assert Attachment.objects.count() == 0


def test_a_download_is_not_served_once_its_message_is_marked_deleted(room, alice, bob):
    """Even before the files are removed (the removal runs after the deletion commits)."""
    entry = uploaded(alice, room, "notes.txt", b"words\n")
    event = services.post_message(alice, room, "files", attachment_ids=[entry["id"]])
    Message.objects.filter(pk=event.frame["id"]).update(deleted="2026-01-01T00:00:00Z")
    assert client_for(bob).get(entry["url"]).status_code == 404


# --- the request body limit of `manage.py serve` -----------------------------------------------


def test_only_the_upload_url_may_carry_a_body_larger_than_the_global_limit(settings):
    assert max_request_body("/rooms/general/attachments/") == (
        settings.CHAT_ATTACHMENT_MAX_BYTES + settings.CHAT_ATTACHMENT_FORM_OVERHEAD
    )
    assert max_request_body("/rooms/general/") == settings.REALTIME_MAX_REQUEST_BODY
    assert max_request_body("/rooms/general/attachments/extra/") == (
        settings.REALTIME_MAX_REQUEST_BODY
    )


def status_of_post(port: int, path: str, length: int, send: int) -> int:
    """POST `send` bytes of a body declared `length` long; the answer's status."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n"
        )
        sock.sendall(head.encode())
        with contextlib.suppress(OSError):  # a refusal may close before the body is sent
            sock.sendall(b"x" * send)
        answer = sock.recv(200)
    return int(answer.split()[1])


def test_serve_refuses_an_oversized_upload_before_reading_it_and_reads_a_large_one(live_server):
    from django.conf import settings

    over = settings.CHAT_ATTACHMENT_MAX_BYTES + settings.CHAT_ATTACHMENT_FORM_OVERHEAD + 1
    assert status_of_post(live_server.port, "/rooms/general/attachments/", over, 0) == 413
    three_mb = 3 * 1024 * 1024  # over the global limit, under the upload URL's
    assert status_of_post(live_server.port, "/rooms/general/", three_mb, three_mb) == 413
    # Read whole and handed to Django, which refuses it for its missing CSRF token.
    assert (
        status_of_post(live_server.port, "/rooms/general/attachments/", three_mb, three_mb) == 403
    )


def test_unsent_uploads_older_than_a_day_are_removed_by_the_command(room, alice, media_root):
    from datetime import timedelta

    from django.core.management import call_command
    from django.utils import timezone

    stale = uploaded(alice, room, "forgotten.txt", b"never sent\n")
    fresh = uploaded(alice, room, "draft.txt", b"about to be sent\n")
    sent = uploaded(alice, room, "sent.txt", b"sent long ago\n")
    services.post_message(alice, room, "old", attachment_ids=[sent["id"]])
    a_day_ago = timezone.now() - timedelta(days=1, minutes=1)
    Attachment.objects.filter(pk__in=[stale["id"], sent["id"]]).update(created=a_day_ago)
    output = io.StringIO()
    call_command("remove_unsent_attachments", stdout=output)
    assert output.getvalue().strip() == "Removed 1 unsent upload."
    assert sorted(Attachment.objects.values_list("pk", flat=True)) == [fresh["id"], sent["id"]]
    assert len(stored_files(media_root)) == 2


# --- attacks -----------------------------------------------------------------------------------


def gif_html_polyglot() -> bytes:
    """A real GIF (Pillow reads it) followed by a page with script: kept byte for byte, as GIFs
    are not re-encoded."""
    output = io.BytesIO()
    Image.new("P", (8, 8)).save(output, "GIF")
    return output.getvalue() + b"<html><script>alert(document.cookie)</script></html>"


@pytest.mark.parametrize(
    ("name", "data", "shown_as"),
    [
        ("run.bat", b"del /q C:\\*\r\n", "run.bat.txt"),
        ("page.html", b"hello\n<script>alert(1)</script>\n", "page.html.txt"),
        ("drawing.svg", b"x <svg onload=alert(1)>", "drawing.svg.txt"),
        ("README", b"plain words\n", "README.txt"),
        ("Notes.TXT", b"plain words\n", "Notes.TXT"),
        ("cat.html", gif_html_polyglot(), "cat.html.gif"),
        ("tool.jar", b"PK\x05\x06" + b"\x00" * 18, "tool.jar.zip"),
        ("report.docx", b"PK\x05\x06" + b"\x00" * 18, "report.docx"),
        ("x" * 300 + ".exe", b"plain words\n", "x" * 196 + ".txt"),
    ],
    ids=["bat", "html", "svg", "no-extension", "txt", "gif-polyglot", "jar", "docx", "long-exe"],
)
def test_a_file_is_named_with_an_extension_of_its_type(room, alice, bob, name, data, shown_as):
    """A download is opened by its extension: text saved as run.bat runs as commands when
    double-clicked, a GIF saved as cat.html opens as a page and runs its script."""
    entry = uploaded(alice, room, name, data)
    assert entry["name"] == shown_as
    services.post_message(alice, room, "have a look", attachment_ids=[entry["id"]])
    download = client_for(bob).get(entry["url"])
    assert download["Content-Disposition"].endswith(f'filename="{shown_as}"')
    assert download["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in download["Content-Security-Policy"]


def test_quotes_and_line_breaks_in_a_name_cannot_break_the_download_header(room, alice):
    entry = uploaded(alice, room, 'say "hi"; filename=x.html.txt', b"words\n")
    download = client_for(alice).get(entry["url"])
    assert download["Content-Disposition"] == (
        'attachment; filename="say \\"hi\\"; filename=x.html.txt"'
    )
    # Browsers send a line break in a name percent-encoded; one sent raw is dropped.
    assert clean_name("a\r\nSet-Cookie: x=1.txt") == "aSet-Cookie: x=1.txt"


def test_images_are_decoded_a_few_at_a_time_and_the_rest_told_to_retry(
    room, alice, media_root, monkeypatch
):
    """A tiny PNG can declare 39 megapixels (2 s and 160 MB to process): uploads at once must
    not decode without bound. With every decoding slot taken, an image waits, then gets 503."""
    from chat import images

    monkeypatch.setattr(images, "DECODE_WAIT_SECONDS", 0.01)
    held = [images._decoding.acquire(blocking=False) for _ in range(images.MAX_DECODING)]
    try:
        assert all(held)
        busy = upload(client_for(alice), room.slug, "cake.png", png_bytes())
        assert busy.status_code == 503
        assert "busy" in busy.json()["error"]
        assert Attachment.objects.count() == 0 and stored_files(media_root) == []
        # Files that are not images need no slot.
        assert upload(client_for(alice), room.slug, "a.txt", b"words\n").status_code == 201
    finally:
        for _ in held:
            images._decoding.release()
    assert upload(client_for(alice), room.slug, "cake.png", png_bytes()).status_code == 201


def test_a_user_stores_at_most_the_daily_quota(room, alice, bob, settings, media_root, monkeypatch):
    """One account could otherwise fill the disk: 10 files of 10 MB a message, over and over,
    in a private room of its own (or its inodes, with files of one byte)."""
    from chat import uploads

    settings.CHAT_ATTACHMENT_DAILY_BYTES = 1000
    first = uploaded(alice, room, "a.txt", b"a" * 600)
    services.post_message(alice, room, "sent, still counted", attachment_ids=[first["id"]])
    refused = upload(client_for(alice), room.slug, "b.txt", b"b" * 600)
    assert refused.status_code == 429
    assert refused.json()["error"] == (
        "You can upload 1000 bytes a day and have used 600 bytes; try again later."
    )
    assert Attachment.objects.count() == 1 and len(stored_files(media_root)) == 1
    assert upload(client_for(alice), room.slug, "c.txt", b"c" * 400).status_code == 201
    assert upload(client_for(bob), room.slug, "d.txt", b"d" * 600).status_code == 201
    monkeypatch.setattr(uploads, "MAX_DAILY_UPLOADS", 2)  # tiny files count too
    refused = upload(client_for(alice), room.slug, "f.txt", b"f")
    assert refused.status_code == 429
    assert refused.json()["error"] == "You can upload 2 files a day; try again later."
    # Uploads older than a day no longer count.
    Attachment.objects.filter(uploader=alice).update(created=timezone.now() - timedelta(days=2))
    assert upload(client_for(alice), room.slug, "e.txt", b"e" * 600).status_code == 201


def test_uploads_sent_at_once_cannot_pass_the_limits_on_the_same_count(
    room, alice, settings, media_root, monkeypatch
):
    """The count is taken again under the user's lock right before the row is saved: an upload
    that passed the first check while another was being stored is refused there."""
    from chat import uploads

    settings.CHAT_ATTACHMENT_DAILY_BYTES = 1000
    checks = []
    original = uploads._require_allowance

    def check_then_let_another_upload_land(user, size):
        checks.append(size)
        original(user, size)
        if len(checks) == 1:  # between this upload's first check and its save, another lands
            uploaded(alice, room, "other.txt", b"o" * 600)

    monkeypatch.setattr(uploads, "_require_allowance", check_then_let_another_upload_land)
    refused = upload(client_for(alice), room.slug, "mine.txt", b"m" * 600)
    assert refused.status_code == 429
    assert list(Attachment.objects.values_list("name", flat=True)) == ["other.txt"]
    assert len(stored_files(media_root)) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/rooms/general/?next=/rooms/general/attachments/",
        "//rooms/general/attachments/",
        "/rooms/general/attachments//",
        "/rooms/general/attachments/x/../",
        "/rooms/general%2Fattachments/",
        "/rooms/general/attachments/;x",
        "/ROOMS/general/attachments/",
        "/rooms//attachments/",
        "http://127.0.0.1/rooms/general/attachments/",
    ],
)
def test_no_path_trick_gives_another_url_the_upload_urls_body_limit(live_server, path):
    """Declared 3 MB (over the general limit, under the upload URL's) and nothing sent: only a
    path the limit's regex takes for the upload URL would wait for the body."""
    assert status_of_post(live_server.port, path, 3 * 1024 * 1024, 0) == 413


def test_a_path_that_gets_the_larger_limit_reaches_the_upload_view_or_nothing(live_server):
    """The regex reads the raw path, Django the decoded one: an encoded slash in the room part
    matches the regex but routes nowhere, so the body is read and answered 404."""
    three_mb = 3 * 1024 * 1024
    path = "/rooms/a%2F..%2F..%2Fconsole/attachments/"
    assert max_request_body(path) > three_mb
    assert status_of_post(live_server.port, path, three_mb, three_mb) == 404


def test_serve_cuts_off_a_chunked_upload_over_the_limit(live_server):
    """No Content-Length to refuse on: the chunks are counted as they come, and reading stops
    soon after the upload URL's limit (a 40 MB stream is not read to its end)."""
    from django.conf import settings

    limit = settings.CHAT_ATTACHMENT_MAX_BYTES + settings.CHAT_ATTACHMENT_FORM_OVERHEAD
    forty_mb, sent = 40 * 1024 * 1024, 0
    chunk = b"x" * 65536
    with socket.create_connection(("127.0.0.1", live_server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /rooms/general/attachments/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Transfer-Encoding: chunked\r\nContent-Type: application/octet-stream\r\n\r\n"
        )
        with contextlib.suppress(OSError):  # reset or broken pipe: the server stopped reading
            while sent < forty_mb:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
    assert sent < 2 * limit, f"the server read {sent} bytes of a chunked upload over its limit"


def test_a_retry_echoes_only_the_senders_own_message_and_attaches_nothing_new(room, alice, bob):
    """The echo of a retried post is the message stored under (room, sender, client_id): other
    text or other files in the retry change nothing, and another person's post with the same
    client_id is theirs, never an echo of alice's."""
    first_file = uploaded(alice, room, "a.txt", b"a\n")
    second_file = uploaded(alice, room, "b.txt", b"b\n")
    first = services.post_message(
        alice, room, "original", client_id="c-1", attachment_ids=[first_file["id"]]
    )
    retry = services.post_message(
        alice, room, "changed", client_id="c-1", attachment_ids=[second_file["id"]]
    )
    assert retry.echo and retry.echo[0]["id"] == first.frame["id"]
    assert retry.echo[0]["text"] == "original"
    assert [a["id"] for a in retry.echo[0]["attachments"]] == [first_file["id"]]
    assert Attachment.objects.get(pk=second_file["id"]).message_id is None  # still hers to send
    with pytest.raises(ChatError) as refused:  # bob names alice's client_id and her file
        services.post_message(bob, room, "mine", client_id="c-1", attachment_ids=[first_file["id"]])
    assert refused.value.code == protocol.NOT_FOUND
    own = services.post_message(bob, room, "mine", client_id="c-1")
    assert not own.echo and own.frame["user"] == "bob" and own.frame["attachments"] == []
    assert Message.objects.count() == 2


def test_a_removed_member_retrying_a_post_gets_not_member_not_the_echo(alice, bob):
    from chat import membership

    secret, _ = membership.create_private_room(alice, "Secret")
    membership.invite(alice, secret, "bob")
    membership.accept(bob, secret)
    services.post_message(bob, secret, "before", client_id="c-9")
    membership.remove(alice, secret, "bob")
    with pytest.raises(ChatError) as refused:
        services.post_message(bob, secret, "before", client_id="c-9")
    assert refused.value.code == protocol.NOT_MEMBER


def animated(image_format: str, **metadata) -> bytes:
    """A two-frame animation in `image_format` carrying `metadata` (Pillow's save options)."""
    frames = [Image.new("RGB", (32, 32), colour) for colour in ("red", "blue")]
    output = io.BytesIO()
    frames[0].save(
        output, image_format, save_all=True, append_images=frames[1:], duration=100, **metadata
    )
    return output.getvalue()


def camera_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SpyCam Inc."  # Make
    exif[0x8825] = {1: "N", 2: (59.0, 19.0, 48.0)}  # GPS latitude
    return exif.tobytes()


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("moving.webp", animated("WEBP", exif=camera_exif(), xmp=b"<x:xmpmeta>SpyCam</x:xmpmeta>")),
        ("moving.png", animated("PNG", exif=camera_exif())),
        ("moving.gif", animated("GIF", comment=b"SpyCam at 59N 19E")),
        ("still.gif", gif_html_polyglot().replace(b"<html>", b"<html>SpyCam")),
        ("portrait.jpg", animated("MPO", exif=camera_exif())),
    ],
    ids=["animated-webp", "apng", "animated-gif", "gif-with-trailing-page", "mpo-jpeg"],
)
def test_images_kept_as_uploaded_lose_their_metadata_and_trailing_bytes(room, alice, name, data):
    """Animations keep their frames as uploaded: the container's EXIF (camera, GPS), XMP, text
    and comments, and anything after a GIF's end, must not go with them. A JPEG holding several
    pictures (MPO) was kept whole, EXIF and all; it is stored as its first picture."""
    assert b"SpyCam" in data
    entry = uploaded(alice, room, name, data)
    stored = body(client_for(alice).get(entry["url"]))
    assert b"SpyCam" not in stored and b"59N" not in stored and b"<html>" not in stored
    image = Image.open(io.BytesIO(stored))
    assert dict(image.getexif()) == {}
    expected_frames = 1 if name in ("still.gif", "portrait.jpg") else 2
    assert getattr(image, "n_frames", 1) == expected_frames
    image.seek(expected_frames - 1)
    image.load()  # every frame still decodes
