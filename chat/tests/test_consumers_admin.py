"""The staff console socket (AdminChatConsumer) through the real session and auth middleware."""

import asyncio

import pytest

from chat import protocol
from chat.models import AuditEntry, Message, Room
from chat.tests.conftest import join_room, next_of_type, open_socket
from realtime.db import database_sync_to_async

pytestmark = pytest.mark.django_db(transaction=True)


async def open_console(user):
    socket = await open_socket("/ws/chat/admin/", user)
    opening = [await socket.receive_json_from() for _ in range(3)]
    assert [f["type"] for f in opening] == [protocol.HISTORY, protocol.AUDIT, protocol.STATS]
    return socket, opening


async def test_anonymous_console_socket_is_closed_with_4401(channel_layer, transactional_db):
    socket = await open_socket("/ws/chat/admin/")
    closed = await socket.receive_output()
    assert closed == {"type": "websocket.close", "code": protocol.CLOSE_LOGIN_REQUIRED}


async def test_non_staff_console_socket_is_closed_with_4403(channel_layer, alice):
    socket = await open_socket("/ws/chat/admin/", alice)
    closed = await socket.receive_output()
    assert closed == {"type": "websocket.close", "code": protocol.CLOSE_FORBIDDEN}


async def test_console_receives_messages_of_every_room(channel_layer, room, alice, moderator):
    await database_sync_to_async(Room.objects.create)(slug="random")
    console, _ = await open_console(moderator)
    for slug in ("general", "random"):
        socket, _ = await join_room(slug, alice)
        await socket.send_json_to({"type": protocol.MESSAGE, "text": f"in {slug}"})
        seen = await next_of_type(console, protocol.MESSAGE)
        assert (seen["room"], seen["text"]) == (slug, f"in {slug}")
        await socket.disconnect()


async def test_console_sees_presence_of_rooms(channel_layer, room, alice, moderator):
    console, _ = await open_console(moderator)
    assert (await next_of_type(console, protocol.PRESENCE))["users"] == []  # the opening list
    socket, _ = await join_room("general", alice)
    update = await next_of_type(console, protocol.PRESENCE)
    assert (update["room"], update["users"]) == ("general", ["alice"])
    await socket.disconnect()


async def test_console_delete_removes_message_everywhere_and_is_audited(
    channel_layer, room, alice, bob, moderator
):
    reader, _ = await join_room("general", bob)
    author, _ = await join_room("general", alice)
    await author.send_json_to({"type": protocol.MESSAGE, "text": "rude"})
    message = await next_of_type(reader, protocol.MESSAGE)
    console, _ = await open_console(moderator)
    await console.send_json_to({"type": protocol.DELETE, "id": message["id"]})
    assert (await next_of_type(reader, protocol.DELETED))["id"] == message["id"]
    audit = await next_of_type(console, protocol.AUDIT)
    [entry] = audit["entries"]
    assert (entry["actor"], entry["action"], entry["target_user"]) == ("mod", "delete", "alice")
    saved = await database_sync_to_async(Message.objects.get)(pk=message["id"])
    assert saved.deleted is not None
    for socket in (reader, author, console):
        await socket.disconnect()


async def test_console_mute_stops_user_posting_and_is_audited(
    channel_layer, room, alice, moderator
):
    console, _ = await open_console(moderator)
    frame = {"type": protocol.MUTE, "user": "alice", "room": "general", "minutes": 10}
    await console.send_json_to(frame)
    entry = (await next_of_type(console, protocol.AUDIT))["entries"][0]
    assert (entry["action"], entry["target_user"], entry["room"]) == ("mute", "alice", "general")
    socket, _ = await join_room("general", alice)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "hello?"})
    assert (await next_of_type(socket, protocol.ERROR))["code"] == protocol.MUTED
    await socket.disconnect()
    await console.disconnect()


async def test_mute_of_unknown_user_is_not_found(channel_layer, moderator):
    console, _ = await open_console(moderator)
    await console.send_json_to({"type": protocol.MUTE, "user": "ghost", "minutes": 5})
    assert (await next_of_type(console, protocol.ERROR))["code"] == protocol.NOT_FOUND
    await console.disconnect()


async def test_announcement_appears_in_every_room_and_notifies_everyone(
    channel_layer, room, alice, moderator
):
    from notifications.protocol import FANOUT_CHANNEL

    await database_sync_to_async(Room.objects.create)(slug="random")
    member, _ = await join_room("random", alice)
    console, _ = await open_console(moderator)
    await console.send_json_to({"type": protocol.ANNOUNCE, "text": "Maintenance at noon"})
    seen = await next_of_type(member, protocol.MESSAGE)
    assert (seen["kind"], seen["text"]) == (protocol.KIND_ANNOUNCEMENT, "Maintenance at noon")
    rooms = {(await next_of_type(console, protocol.MESSAGE))["room"] for _ in range(2)}
    assert rooms == {"general", "random"}
    assert (await next_of_type(console, protocol.AUDIT))["entries"][0]["action"] == "announce"
    fanout = await channel_layer.receive(FANOUT_CHANNEL)
    assert (fanout["verb"], fanout["text"]) == ("announcement", "Maintenance at noon")
    await member.disconnect()
    await console.disconnect()


async def test_console_opening_shows_recent_audit_entries(channel_layer, moderator):
    await database_sync_to_async(AuditEntry.objects.create)(
        actor=moderator, actor_name="mod", action=AuditEntry.ACTION_ANNOUNCE, detail="earlier"
    )
    console, opening = await open_console(moderator)
    assert [e["detail"] for e in opening[1]["entries"]] == ["earlier"]
    await console.disconnect()


async def test_console_rejects_room_frames(channel_layer, moderator):
    console, _ = await open_console(moderator)
    await console.send_json_to({"type": protocol.MESSAGE, "text": "hi"})
    assert (await next_of_type(console, protocol.ERROR))["code"] == protocol.UNKNOWN_TYPE
    await console.disconnect()


async def test_an_announcement_retried_after_a_redis_outage_is_posted_once(
    settings, fresh_redis, room, moderator
):
    """Redis goes away after the announcement is saved: the moderator is told it is posted and
    that notifying failed; sending it again (same client_id) posts nothing twice and queues the
    notifications under the same fan-out id."""
    from notifications.protocol import FANOUT_CHANNEL
    from realtime.layers import get_channel_layer

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.redis.RedisChannelLayer",
            "CONFIG": {"hosts": [fresh_redis.url]},
        }
    }
    layer = get_channel_layer()
    console, _ = await open_console(moderator)
    frame = {"type": protocol.ANNOUNCE, "text": "Outage drill", "client_id": "drill-1"}
    fresh_redis.stop()
    await console.send_json_to(frame)
    error = await next_of_type(console, protocol.ERROR, timeout=15)
    assert error["code"] == protocol.SERVER_ERROR
    assert "posted" in error["detail"]
    fresh_redis.start()
    await console.send_json_to(frame)
    fanout = await asyncio.wait_for(layer.receive(FANOUT_CHANNEL), 15)
    assert fanout["text"] == "Outage drill"
    announcements = await database_sync_to_async(
        Message.objects.filter(kind=protocol.KIND_ANNOUNCEMENT).count
    )()
    assert announcements == 1  # one room, posted once
    assert await database_sync_to_async(AuditEntry.objects.count)() == 1
    await console.disconnect()
    await layer.close()
