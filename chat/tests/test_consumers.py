"""The room socket (PublicChatConsumer) through the real session and auth middleware."""

import asyncio
import json

import pytest

from chat import protocol
from chat.models import Message, Room
from chat.tests.conftest import apost, frames_within, join_room, next_of_type, open_socket
from realtime.db import database_sync_to_async

pytestmark = pytest.mark.django_db(transaction=True)


def post(room, user, text, **fields):
    from chat.services import post_message

    return post_message(user, room, text, **fields)


async def test_connect_sends_latest_fifty_messages_oldest_first_with_has_more(
    channel_layer, room, alice
):
    for n in range(55):
        await apost(room, alice, f"m{n}")
    socket, history = await join_room("general")
    texts = [m["text"] for m in history["messages"]]
    assert texts == [f"m{n}" for n in range(5, 55)]
    assert history["has_more"] is True
    await socket.disconnect()


async def test_history_message_has_the_documented_fields(channel_layer, room, alice):
    await database_sync_to_async(post)(room, alice, "hello", client_id="c-1")
    socket, history = await join_room("general")
    [message] = history["messages"]
    assert message["type"] == protocol.MESSAGE
    assert (message["room"], message["user"], message["text"]) == ("general", "alice", "hello")
    assert message["client_id"] == "c-1"
    assert message["ts"].endswith("+00:00")
    assert isinstance(message["id"], int)
    await socket.disconnect()


async def test_older_page_is_sent_on_history_before(channel_layer, room, alice):
    for n in range(60):
        await apost(room, alice, f"m{n}")
    socket, history = await join_room("general")
    oldest = history["messages"][0]["id"]
    await socket.send_json_to({"type": protocol.HISTORY, "before": oldest})
    page = await next_of_type(socket, protocol.HISTORY)
    assert [m["text"] for m in page["messages"]] == [f"m{n}" for n in range(10)]
    assert page["has_more"] is False
    assert page["before"] == oldest
    await socket.disconnect()


async def test_message_is_saved_and_echoed_to_sender_with_client_id(channel_layer, room, alice):
    socket, _ = await join_room("general", alice)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "hi all", "client_id": "abc"})
    echo = await next_of_type(socket, protocol.MESSAGE)
    assert (echo["user"], echo["text"], echo["client_id"]) == ("alice", "hi all", "abc")
    saved = await database_sync_to_async(Message.objects.get)(pk=echo["id"])
    assert saved.text == "hi all"
    await socket.disconnect()


async def test_message_reaches_other_members_of_the_room_only(channel_layer, room, alice, bob):
    await database_sync_to_async(Room.objects.create)(slug="random")
    sender, _ = await join_room("general", alice)
    reader, _ = await join_room("general", bob)
    elsewhere, _ = await join_room("random", bob)
    await sender.send_json_to({"type": protocol.MESSAGE, "text": "in general"})
    received = await next_of_type(reader, protocol.MESSAGE)
    assert received["text"] == "in general"
    assert protocol.MESSAGE not in [f["type"] for f in await frames_within(elsewhere)]
    for socket in (sender, reader, elsewhere):
        await socket.disconnect()


async def test_anonymous_visitor_reads_but_cannot_send(channel_layer, room, alice):
    await apost(room, alice, "public")
    socket, history = await join_room("general")
    assert [m["text"] for m in history["messages"]] == ["public"]
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "hi"})
    error = await next_of_type(socket, protocol.ERROR)
    assert error["code"] == protocol.LOGIN_REQUIRED
    assert await database_sync_to_async(Message.objects.count)() == 1
    await socket.disconnect()


async def test_opening_history_frame_says_who_the_socket_is(channel_layer, room, alice):
    anonymous, history = await join_room("general")
    assert history["user"] is None
    member, history = await join_room("general", alice)
    assert history["user"] == "alice"
    resumed, history = await join_room("general", alice, query="after=0")
    assert history["user"] == "alice"
    for socket in (anonymous, member, resumed):
        await socket.disconnect()


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", protocol.MALFORMED),
        ("[1, 2]", protocol.MALFORMED),
        ('{"type": "dance"}', protocol.UNKNOWN_TYPE),
        ('{"text": "no type"}', protocol.MALFORMED),
        ('{"type": ["message"]}', protocol.MALFORMED),
        ('{"type": "read", "id": 1000000000000000000000000000000}', protocol.MALFORMED),
        ('{"type": "message", "text": NaN}', protocol.MALFORMED),
        ('{"type": "message", "text": ' + "[" * 3000 + "]" * 3000 + "}", protocol.MALFORMED),
        ('{"type": "message", "text": 42}', protocol.INVALID),
        ('{"type": "history", "before": "x"}', protocol.INVALID),
    ],
)
async def test_malformed_frame_gets_error_and_connection_stays_open(
    channel_layer, room, alice, raw, code
):
    socket, _ = await join_room("general", alice)
    await socket.send_to(text_data=raw)
    error = await next_of_type(socket, protocol.ERROR)
    assert error["code"] == code
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "still here"})
    assert (await next_of_type(socket, protocol.MESSAGE))["text"] == "still here"
    await socket.disconnect()


async def test_binary_frame_gets_malformed_error(channel_layer, room, alice):
    socket, _ = await join_room("general", alice)
    await socket.send_to(bytes_data=b'{"type": "message"}')
    assert (await next_of_type(socket, protocol.ERROR))["code"] == protocol.MALFORMED
    await socket.disconnect()


async def test_text_over_limit_is_refused_as_too_long(channel_layer, room, alice):
    socket, _ = await join_room("general", alice)
    text = "x" * (protocol.MAX_TEXT_LENGTH + 1)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": text})
    assert (await next_of_type(socket, protocol.ERROR))["code"] == protocol.TOO_LONG
    assert await database_sync_to_async(Message.objects.count)() == 0
    await socket.disconnect()


async def test_text_at_limit_is_accepted(channel_layer, room, alice):
    socket, _ = await join_room("general", alice)
    text = "x" * protocol.MAX_TEXT_LENGTH
    await socket.send_json_to({"type": protocol.MESSAGE, "text": text})
    assert (await next_of_type(socket, protocol.MESSAGE))["text"] == text
    await socket.disconnect()


async def test_blank_text_is_refused_as_empty(channel_layer, room, alice):
    socket, _ = await join_room("general", alice)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "   \n"})
    assert (await next_of_type(socket, protocol.ERROR))["code"] == protocol.EMPTY
    await socket.disconnect()


async def test_frame_over_64_kib_gets_too_large_and_close_4009(channel_layer, room, alice):
    socket, _ = await join_room("general", alice)
    payload = json.dumps({"type": "message", "text": "x" * protocol.MAX_FRAME_BYTES})
    await socket.send_to(text_data=payload)
    error = await socket.receive_json_from()
    assert error["code"] == protocol.TOO_LARGE
    closed = await socket.receive_output()
    assert closed == {"type": "websocket.close", "code": protocol.CLOSE_TOO_LARGE}


async def test_eleventh_message_within_window_is_rate_limited(channel_layer, room, alice):
    socket, _ = await join_room("general", alice)
    for n in range(10):
        await socket.send_json_to({"type": protocol.MESSAGE, "text": f"m{n}"})
        assert (await next_of_type(socket, protocol.MESSAGE))["text"] == f"m{n}"
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "one too many"})
    assert (await next_of_type(socket, protocol.ERROR))["code"] == protocol.RATE_LIMITED
    assert await database_sync_to_async(Message.objects.count)() == 10
    await socket.disconnect()


async def test_rate_limit_follows_setting(channel_layer, room, alice, settings):
    settings.CHAT_RATE_LIMIT = "2/60"
    socket, _ = await join_room("general", alice)
    for text in ("a", "b", "c"):
        await socket.send_json_to({"type": protocol.MESSAGE, "text": text})
    assert (await next_of_type(socket, protocol.ERROR))["code"] == protocol.RATE_LIMITED
    await socket.disconnect()


async def test_reconnect_with_after_gets_exactly_the_missed_messages(channel_layer, room, alice):
    first = await apost(room, alice, "seen")
    await apost(room, alice, "missed 1")
    await apost(room, alice, "missed 2")
    socket, history = await join_room("general", query=f"after={first.frame['id']}")
    assert [m["text"] for m in history["messages"]] == ["missed 1", "missed 2"]
    assert history["after"] == first.frame["id"]
    await socket.disconnect()


async def test_reconnect_with_after_and_seq_replays_missed_edits_and_deletes(
    channel_layer, room, alice
):
    kept = await apost(room, alice, "typo")
    gone = await apost(room, alice, "oops")
    from chat.services import delete_message, edit_message

    await database_sync_to_async(edit_message)(alice, room, kept.frame["id"], "fixed")
    await database_sync_to_async(delete_message)(alice, gone.frame["id"], room)
    socket = await open_socket(f"/ws/chat/general/?after={gone.frame['id']}&seq={gone.seq}")
    history, edited, deleted, presence = [await socket.receive_json_from() for _ in range(4)]
    assert (history["type"], history["messages"]) == (protocol.HISTORY, [])
    assert (edited["type"], edited["id"], edited["text"]) == (
        protocol.EDITED,
        kept.frame["id"],
        "fixed",
    )
    assert (deleted["type"], deleted["id"]) == (protocol.DELETED, gone.frame["id"])
    assert presence["type"] == protocol.PRESENCE
    await socket.disconnect()


async def test_unknown_room_gets_error_and_close_4404(channel_layer, transactional_db):
    socket = await open_socket("/ws/chat/nowhere/")
    assert (await socket.receive_json_from())["code"] == protocol.NOT_FOUND
    closed = await socket.receive_output()
    assert closed == {"type": "websocket.close", "code": protocol.CLOSE_NO_SUCH_ROOM}


async def test_typing_is_shown_to_other_members(channel_layer, room, alice, bob):
    typist, _ = await join_room("general", alice)
    reader, _ = await join_room("general", bob)
    await typist.send_json_to({"type": protocol.TYPING})
    frame = await next_of_type(reader, protocol.TYPING)
    assert frame["user"] == "alice"
    await typist.disconnect()
    await reader.disconnect()


async def test_presence_lists_users_and_updates_when_someone_leaves(
    channel_layer, room, alice, bob
):
    first, _ = await join_room("general", alice)
    second, _ = await join_room("general", bob)
    update = await next_of_type(first, protocol.PRESENCE)
    assert update["users"] == ["alice", "bob"]
    await second.disconnect()
    update = await next_of_type(first, protocol.PRESENCE)
    assert update["users"] == ["alice"]
    await first.disconnect()


async def test_author_edits_own_message_and_everyone_sees_edited(channel_layer, room, alice, bob):
    author, _ = await join_room("general", alice)
    reader, _ = await join_room("general", bob)
    await author.send_json_to({"type": protocol.MESSAGE, "text": "helo"})
    message = await next_of_type(reader, protocol.MESSAGE)
    await author.send_json_to({"type": protocol.EDIT, "id": message["id"], "text": "hello"})
    edited = await next_of_type(reader, protocol.EDITED)
    assert (edited["id"], edited["text"]) == (message["id"], "hello")
    await author.disconnect()
    await reader.disconnect()


async def test_editing_someone_elses_message_is_not_allowed(channel_layer, room, alice, bob):
    event = await apost(room, alice, "mine")
    socket, _ = await join_room("general", bob)
    await socket.send_json_to({"type": protocol.EDIT, "id": event.frame["id"], "text": "x"})
    assert (await next_of_type(socket, protocol.ERROR))["code"] == protocol.NOT_ALLOWED
    await socket.disconnect()


async def test_editing_after_ten_minutes_is_not_allowed(channel_layer, room, alice):
    from django.utils import timezone

    event = await apost(room, alice, "old")
    old = timezone.now() - protocol.EDIT_WINDOW - protocol.EDIT_WINDOW / 10
    await database_sync_to_async(Message.objects.filter(pk=event.frame["id"]).update)(created=old)
    socket, _ = await join_room("general", alice)
    await socket.send_json_to({"type": protocol.EDIT, "id": event.frame["id"], "text": "new"})
    assert (await next_of_type(socket, protocol.ERROR))["code"] == protocol.NOT_ALLOWED
    await socket.disconnect()


async def test_author_deletes_own_message_and_it_leaves_history(channel_layer, room, alice, bob):
    event = await apost(room, alice, "regret")
    author, _ = await join_room("general", alice)
    reader, _ = await join_room("general", bob)
    await author.send_json_to({"type": protocol.DELETE, "id": event.frame["id"]})
    assert (await next_of_type(reader, protocol.DELETED))["id"] == event.frame["id"]
    late, history = await join_room("general")
    assert history["messages"] == []
    for socket in (author, reader, late):
        await socket.disconnect()


async def test_staff_deletes_anyones_message_from_the_room(channel_layer, room, alice, moderator):
    event = await apost(room, alice, "spam")
    socket, _ = await join_room("general", moderator)
    await socket.send_json_to({"type": protocol.DELETE, "id": event.frame["id"]})
    assert (await next_of_type(socket, protocol.DELETED))["id"] == event.frame["id"]
    await socket.disconnect()


async def test_muted_user_cannot_post(channel_layer, room, alice, moderator):
    from chat.services import mute_user

    await database_sync_to_async(mute_user)(moderator, "alice", "general", 5)
    socket, _ = await join_room("general", alice)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "let me talk"})
    assert (await next_of_type(socket, protocol.ERROR))["code"] == protocol.MUTED
    await socket.disconnect()


async def test_read_marker_is_reported_on_next_connect(channel_layer, room, alice, bob):
    first = await apost(room, bob, "one")
    await apost(room, bob, "two")
    socket, history = await join_room("general", alice)
    assert history["last_read"] == 0
    await socket.send_json_to({"type": protocol.READ, "id": first.frame["id"]})
    await socket.disconnect()
    socket, history = await join_room("general", alice)
    assert history["last_read"] == first.frame["id"]
    await socket.disconnect()


async def test_mention_notifies_the_named_user(channel_layer, room, alice, bob):
    from notifications.models import Notification

    socket, _ = await join_room("general", alice)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "hey @bob look"})
    message = await next_of_type(socket, protocol.MESSAGE)
    # The notification is queued after the message is broadcast (handle_message).
    async with asyncio.timeout(5):
        while not (
            notes := await database_sync_to_async(list)(Notification.objects.filter(recipient=bob))
        ):
            await asyncio.sleep(0.01)
    assert [(n.verb, n.url) for n in notes] == [
        ("mention", f"/rooms/general/#message-{message['id']}")
    ]
    assert not await database_sync_to_async(Notification.objects.filter(recipient=alice).exists)()
    await socket.disconnect()


async def test_sender_still_sees_saved_message_when_broadcast_fails(
    channel_layer, room, alice, monkeypatch
):
    socket, _ = await join_room("general", alice)
    real_group_send = channel_layer.group_send

    async def failing_group_send(group, message):
        if message["type"] == protocol.EVENT_ROOM:
            raise ConnectionError("layer down")
        await real_group_send(group, message)

    monkeypatch.setattr(channel_layer, "group_send", failing_group_send)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "saved anyway"})
    echo = await next_of_type(socket, protocol.MESSAGE)
    assert echo["text"] == "saved anyway"
    assert await database_sync_to_async(Message.objects.filter(pk=echo["id"]).exists)()
    await socket.disconnect()


async def test_database_failure_gets_server_error_and_socket_stays(
    channel_layer, room, alice, monkeypatch
):
    from django.db import OperationalError

    import chat.services

    socket, _ = await join_room("general", alice)
    real_post = chat.services.post_message

    def broken_post(*args, **kwargs):
        raise OperationalError("database is locked")

    monkeypatch.setattr(chat.services, "post_message", broken_post)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "first try"})
    assert (await next_of_type(socket, protocol.ERROR))["code"] == protocol.SERVER_ERROR
    monkeypatch.setattr(chat.services, "post_message", real_post)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "second try"})
    assert (await next_of_type(socket, protocol.MESSAGE))["text"] == "second try"
    await socket.disconnect()


async def test_edits_count_against_the_rate_limit(channel_layer, room, alice, settings):
    settings.CHAT_RATE_LIMIT = "2/60"
    socket, _ = await join_room("general", alice)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "v1"})
    message = await next_of_type(socket, protocol.MESSAGE)
    await socket.send_json_to({"type": protocol.EDIT, "id": message["id"], "text": "v2"})
    assert (await next_of_type(socket, protocol.EDITED))["text"] == "v2"
    await socket.send_json_to({"type": protocol.EDIT, "id": message["id"], "text": "v3"})
    assert (await next_of_type(socket, protocol.ERROR))["code"] == protocol.RATE_LIMITED
    await socket.disconnect()


async def test_heartbeat_keeps_a_quiet_member_present_in_redis(
    channel_layer, room, alice, settings, fresh_redis, monkeypatch
):
    import asyncio

    import chat.delivery
    from chat.presence import Presence

    settings.REDIS_URL = fresh_redis.url
    monkeypatch.setattr(chat.delivery, "CHECK_SECONDS", 0.1)
    settings.CHAT_PRESENCE_HEARTBEAT_SECONDS = 0.2
    settings.CHAT_PRESENCE_TTL_SECONDS = 0.6
    socket, _ = await join_room("general", alice)
    await asyncio.sleep(1.5)  # well past the TTL of the first entry
    assert await Presence().users("general") == ["alice"]  # another process's view
    await socket.disconnect()
    assert await Presence().users("general") == []


async def test_room_events_reach_a_member_while_its_own_message_is_being_saved(
    channel_layer, room, alice, monkeypatch
):
    """A member who posts often must not stop receiving the room while the database saves its
    message: before, its socket forwarded nothing until the save returned, so a busy sender's
    socket fell further and further behind the room."""
    import threading

    import chat.services

    socket, history = await join_room("general", alice)
    real_post = chat.services.post_message
    saving, release = threading.Event(), threading.Event()

    def slow_post(*args, **kwargs):
        saving.set()
        release.wait(timeout=10)
        return real_post(*args, **kwargs)

    monkeypatch.setattr(chat.services, "post_message", slow_post)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "mine", "client_id": "slow"})
    assert await asyncio.to_thread(saving.wait, 5)
    other = {"type": protocol.MESSAGE, "room": "general", "user": "bob", "text": "meanwhile"}
    await channel_layer.group_send(
        protocol.room_group("general"),
        {
            "type": protocol.EVENT_ROOM,
            "room": "general",
            "seq": history["seq"] + 1,
            "text": protocol.encode(other),
        },
    )
    try:
        received = await next_of_type(socket, protocol.MESSAGE)
    finally:
        release.set()
    assert received["text"] == "meanwhile"
    await socket.disconnect()
    assert await database_sync_to_async(Message.objects.filter(client_id="slow").exists)()


async def test_a_client_too_far_behind_starts_over_from_the_latest_page(
    channel_layer, room, alice, monkeypatch
):
    """?after=0 on a big room must not send the whole room: the latest page instead, without
    `after`, so the browser starts over as on a first visit."""
    monkeypatch.setattr(protocol, "REPLAY_MAX_MESSAGES", 5)
    for n in range(8):
        await apost(room, alice, f"m{n}")
    socket, history = await join_room("general", query="after=0")
    assert "after" not in history
    assert [m["text"] for m in history["messages"]] == [f"m{n}" for n in range(8)]
    assert history["has_more"] is False
    await socket.disconnect()
    monkeypatch.setattr(protocol, "HISTORY_PAGE_SIZE", 3)
    socket, history = await join_room("general", query="after=0")
    assert [m["text"] for m in history["messages"]] == ["m5", "m6", "m7"]
    assert history["has_more"] is True
    await socket.disconnect()


async def test_a_seq_replay_over_the_cap_starts_over_too(channel_layer, room, alice, monkeypatch):
    monkeypatch.setattr(protocol, "REPLAY_MAX_EVENTS", 2)
    first = await apost(room, alice, "seen")
    for n in range(3):
        await apost(room, alice, f"m{n}")
    query = f"after={first.frame['id']}&seq={first.seq}"
    socket, history = await join_room("general", query=query)
    assert "after" not in history
    await socket.disconnect()


async def test_a_retried_message_is_saved_once_and_shown_once(channel_layer, room, alice, bob):
    """A page that reloads (or reconnects) while its message is in flight sends it again with the
    same client_id: the room gets it once, and the retrying socket gets the stored message."""
    reader, _ = await join_room("general", bob)
    first, _ = await join_room("general", alice)
    await first.send_json_to({"type": protocol.MESSAGE, "text": "once", "client_id": "c-9"})
    original = await next_of_type(reader, protocol.MESSAGE)
    await first.disconnect()
    again, _ = await join_room("general", alice)
    await again.send_json_to({"type": protocol.MESSAGE, "text": "once", "client_id": "c-9"})
    echo = await next_of_type(again, protocol.MESSAGE)
    assert (echo["id"], echo["seq"], echo["client_id"]) == (original["id"], original["seq"], "c-9")
    assert protocol.MESSAGE not in [f["type"] for f in await frames_within(reader)]
    assert await database_sync_to_async(Message.objects.filter(room=room).count)() == 1
    await again.send_json_to({"type": protocol.MESSAGE, "text": "next", "client_id": "c-10"})
    following = await next_of_type(reader, protocol.MESSAGE)
    assert following["seq"] == original["seq"] + 1  # the retry took no number: no gap
    for socket in (reader, again):
        await socket.disconnect()


async def test_a_retry_of_a_message_deleted_meanwhile_shows_it_deleted(channel_layer, room, alice):
    from chat.services import delete_message

    stored = await database_sync_to_async(post)(room, alice, "oops", client_id="c-1")
    await database_sync_to_async(delete_message)(alice, stored.frame["id"], room)
    socket, _ = await join_room("general", alice)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "oops", "client_id": "c-1"})
    echo = await next_of_type(socket, protocol.MESSAGE)
    deleted = await next_of_type(socket, protocol.DELETED)
    assert echo["id"] == deleted["id"] == stored.frame["id"]
    assert await database_sync_to_async(Message.objects.filter(room=room).count)() == 1
    await socket.disconnect()
