"""Text no database can store (NUL, lone surrogates; see realtime.text) is refused as `invalid`
wherever a client gives text that is stored, before any query runs, and an APRS packet carrying
one is stored with U+FFFD in its place. On PostgreSQL (tests/test_postgresql.py runs this module
there too) a NUL used to reach the INSERT and fail it with psycopg.DataError: `server_error` for
the client and a traceback in the log."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from aprs_news.consumers import APRSNewsConsumer
from aprs_news.models import NewsItem
from chat import protocol as chat_protocol
from chat.models import Message, Mute, Room
from chat.services import ChatError, announce, edit_message, mute_user, post_message
from notifications import notify
from notifications.models import AccessToken, Notification
from realtime.db import database_sync_to_async
from realtime.testing import ApplicationCommunicator, WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)

UNSTORABLE = ["a\x00b", "\x00", "lone \ud800 surrogate", "trailing \udfff"]


@pytest.fixture
def author(db):
    return get_user_model().objects.create_user("nul-author", password="pass-word-123")


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_user(
        "nul-staff", password="pass-word-123", is_staff=True, is_superuser=True
    )


@pytest.fixture
def room(db):
    return Room.objects.create(slug="nul-room", title="NUL")


@pytest.fixture
def memory_layer(settings):
    from realtime.layers import get_channel_layer

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"}
    }
    return get_channel_layer()


@pytest.fixture
def error_log(caplog):
    caplog.set_level(logging.ERROR)
    yield caplog
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def test_postgresql_itself_refuses_a_nul_which_is_why_it_is_checked_first(room):
    from django.db import DataError, connection

    if connection.vendor != "postgresql":
        pytest.skip(f"PostgreSQL only (this run: {connection.vendor})")
    with pytest.raises(DataError):
        Room.objects.create(slug="nul-direct", title="a\x00b")


@pytest.mark.parametrize("text", UNSTORABLE)
def test_a_message_edit_or_announcement_with_unstorable_text_is_invalid(author, staff, room, text):
    for attempt in (
        lambda: post_message(author, room, text),
        lambda: post_message(author, room, "fine", client_id=text),
        lambda: edit_message(author, room, post_message(author, room, "draft").frame["id"], text),
        lambda: announce(staff, text),
    ):
        with pytest.raises(ChatError) as refused:
            attempt()
        assert refused.value.code == chat_protocol.INVALID
        assert "U+" in refused.value.detail
    assert list(Message.objects.values_list("text", flat=True)) == ["draft"]


@pytest.mark.parametrize("field", ["user", "room"])
def test_a_mute_naming_an_unstorable_user_or_room_is_invalid(staff, author, room, field):
    names = {"user": author.username, "room": room.slug, field: "nul\x00name"}
    with pytest.raises(ChatError) as refused:
        mute_user(staff, names["user"], names["room"], 5)
    assert refused.value.code == chat_protocol.INVALID
    assert not Mute.objects.exists()


async def test_the_room_socket_answers_invalid_and_keeps_working(
    memory_layer, author, room, error_log
):
    from chat.consumers import PublicChatConsumer

    consumer = PublicChatConsumer.as_asgi()

    async def app(scope, receive, send):
        scope = dict(scope, user=author, url_route={"args": (), "kwargs": {"room": room.slug}})
        return await consumer(scope, receive, send)

    socket = WebsocketCommunicator(app, f"/ws/chat/{room.slug}/")
    assert (await socket.connect())[0]

    async def answer_to(frame: dict) -> dict:
        await socket.send_to(text_data=json.dumps(frame))
        while True:
            answer = json.loads((await socket.receive_output(3))["text"])
            if answer["type"] in (chat_protocol.ERROR, chat_protocol.MESSAGE):
                return answer

    # json.dumps writes the NUL as \u0000 and the surrogate as \ud800, as a browser would.
    for text in UNSTORABLE:
        answer = await answer_to({"type": chat_protocol.MESSAGE, "text": text})
        assert answer["type"] == chat_protocol.ERROR
        assert answer["code"] == chat_protocol.INVALID, answer
    echo = await answer_to({"type": chat_protocol.MESSAGE, "text": "still here", "client_id": "c1"})
    assert (echo["type"], echo["client_id"]) == (chat_protocol.MESSAGE, "c1"), echo
    texts = await database_sync_to_async(
        lambda: list(Message.objects.values_list("text", flat=True))
    )()
    assert texts == ["still here"]
    await socket.disconnect()


@pytest.mark.parametrize("field", ["verb", "text", "url"])
def test_notify_refuses_unstorable_text_and_saves_nothing(author, field):
    fields = {"verb": "mention", "text": "hello", "url": "/rooms/x/", field: "/a\x00b"}
    with pytest.raises(ValueError, match=r"U\+0000"):
        notify(author, **fields)
    assert not Notification.objects.exists()


def test_a_token_name_with_unstorable_text_is_refused_with_a_clear_error(author):
    client = Client()
    client.force_login(author)
    response = client.post("/settings/tokens/", {"name": "laptop\x00"})
    assert response.status_code == 400
    assert "U+0000" in response.content.decode()
    assert not AccessToken.objects.exists()
    assert client.post("/settings/tokens/", {"name": "laptop"}).status_code == 200
    assert list(AccessToken.objects.values_list("name", flat=True)) == ["laptop"]


async def test_an_aprs_bulletin_with_a_nul_is_stored_with_a_replacement_character(
    memory_layer, error_log
):
    line = "N0NUL>APRS,TCPIP*,qAC,T2TEST::BLN1NUL  :Storm\x00 watch {n}"
    marker = str(time.monotonic_ns())
    communicator = ApplicationCommunicator(
        APRSNewsConsumer.as_asgi(),
        {"type": "aprs", "server": "nul:14580", "callsign": "N0CALL", "filter": ""},
    )
    await communicator.send_input({"type": "aprs.connect"})
    for raw in (line.format(n=marker), line.format(n=marker).encode()):
        await communicator.send_input({"type": "aprs.packet", "raw": raw, "received": time.time()})
    await communicator.send_input({"type": "aprs.disconnect"})
    await communicator.wait(timeout=5)
    items = await database_sync_to_async(
        lambda: list(
            NewsItem.objects.filter(text__contains=marker).values("text", "raw", "seen_count")
        )
    )()
    assert len(items) == 1, items
    assert "\x00" not in items[0]["raw"] and "\ufffd" in items[0]["raw"]
    assert items[0]["text"] == f"Storm\ufffd watch {marker}"
    assert items[0]["seen_count"] == 2  # the bytes and the text form are the same news
