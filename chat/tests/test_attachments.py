"""Attachments: the upload's checks (size, type by content), images stripped and thumbnailed,
attaching only your own unused uploads, the `attachments` of message frames and history, and
downloads with safe headers that stop when the message is deleted. Who may read a private room's
files is proven in test_access.py with the other membership checks."""

from __future__ import annotations

import asyncio
import contextlib
import io
import socket

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from PIL import Image

from chat import protocol, services
from chat.models import Attachment, Message
from chat.services import ChatError
from chat.tests.conftest import join_room, next_of_type, png_bytes, upload
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


def test_an_upload_needs_a_login_and_one_file(room, alice):
    anonymous = upload(Client(), room.slug, "a.txt", b"hello")
    assert anonymous.status_code == 403
    assert anonymous.json()["error"] == "Log in to upload files."
    none = client_for(alice).post(f"/rooms/{room.slug}/attachments/", {})
    assert none.status_code == 400
    assert Attachment.objects.count() == 0


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
