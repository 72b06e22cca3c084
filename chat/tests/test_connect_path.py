"""What a connecting room socket gets stays right now that the connect path is cheaper: the
latest page is read once per room and `seq` (chat.history_cache) and is read again after every
new message, edit and deletion; the read marker comes with the room in one query; presence is
joined and listed in one round trip."""

import json

import pytest

from chat import protocol, services
from chat.history_cache import latest_pages
from chat.presence import presence
from chat.tests.conftest import apost, join_room, next_of_type
from realtime.db import database_sync_to_async

pytestmark = pytest.mark.django_db(transaction=True)


async def texts_on_connect(user=None, query: str = "") -> tuple[list[str], dict]:
    socket, history = await join_room("general", user, query=query)
    await socket.disconnect()
    return [m["text"] for m in history["messages"]], history


async def test_sockets_at_the_same_seq_share_one_read_of_the_latest_page(
    channel_layer, room, alice, bob
):
    for n in range(3):
        await apost(room, alice, f"m{n}")
    first, _ = await texts_on_connect(alice)
    reads = latest_pages.reads
    second, _ = await texts_on_connect(bob)
    third, _ = await texts_on_connect()
    assert first == second == third == ["m0", "m1", "m2"]
    assert latest_pages.reads == reads  # the same page, not read again


async def test_the_latest_page_is_read_again_after_a_new_message(channel_layer, room, alice):
    await apost(room, alice, "first")
    assert (await texts_on_connect(alice))[0] == ["first"]
    socket, _ = await join_room("general", alice)
    await socket.send_json_to({"type": protocol.MESSAGE, "text": "second", "client_id": "c2"})
    await next_of_type(socket, protocol.MESSAGE)
    await socket.disconnect()
    texts, history = await texts_on_connect(alice)
    assert texts == ["first", "second"]
    assert history["seq"] == 2


async def test_the_latest_page_shows_an_edit_made_after_it_was_read(channel_layer, room, alice):
    message = await apost(room, alice, "typo")
    assert (await texts_on_connect(alice))[0] == ["typo"]
    socket, _ = await join_room("general", alice)
    await socket.send_json_to({"type": protocol.EDIT, "id": message.frame["id"], "text": "fixed"})
    await next_of_type(socket, protocol.EDITED)
    await socket.disconnect()
    texts, history = await texts_on_connect(alice)
    assert texts == ["fixed"]
    assert history["messages"][0]["edited"] is True


async def test_the_latest_page_drops_a_message_deleted_after_it_was_read(
    channel_layer, room, alice
):
    kept = await apost(room, alice, "kept")
    gone = await apost(room, alice, "gone")
    assert (await texts_on_connect(alice))[0] == ["kept", "gone"]
    socket, _ = await join_room("general", alice)
    await socket.send_json_to({"type": protocol.DELETE, "id": gone.frame["id"]})
    await next_of_type(socket, protocol.DELETED)
    await socket.disconnect()
    texts, history = await texts_on_connect(alice)
    assert texts == ["kept"]
    assert [m["id"] for m in history["messages"]] == [kept.frame["id"]]


async def test_a_change_from_another_process_is_seen_through_the_rooms_seq(
    channel_layer, room, alice
):
    """A message saved elsewhere (a service call, another server process) moves the room's seq
    in the database; the next socket in this process gets the new page."""
    await apost(room, alice, "one")
    assert (await texts_on_connect())[0] == ["one"]
    await database_sync_to_async(services.post_message)(alice, room, "two")
    assert (await texts_on_connect())[0] == ["one", "two"]


async def test_the_cached_frame_is_the_frame_history_page_would_send(channel_layer, room, alice):
    """Key for key and value for value: the page's fields, then the socket's own."""
    for n in range(3):
        await apost(room, alice, f"m{n}")
    await texts_on_connect(alice)  # fills the cache
    socket, history = await join_room("general", alice)
    await socket.disconnect()
    page = await database_sync_to_async(services.history_page)(alice, room, upto_seq=3)
    expected = {**page, "last_read": 0, "seq": 3, "user": "alice"}
    assert list(history) == list(expected)
    assert history == json.loads(json.dumps(expected))


async def test_anonymous_opening_frame_has_no_read_marker(channel_layer, room, alice):
    await apost(room, alice, "hello")
    _, history = await texts_on_connect()
    assert "last_read" not in history
    assert history["user"] is None
    assert history["seq"] == 1


async def test_each_member_gets_their_own_read_marker_with_the_shared_page(
    channel_layer, room, alice, bob
):
    first = await apost(room, alice, "one")
    second = await apost(room, alice, "two")
    await texts_on_connect(alice)  # the page is cached before anyone reads
    await database_sync_to_async(services.mark_read)(alice, room, second.frame["id"])
    await database_sync_to_async(services.mark_read)(bob, room, first.frame["id"])
    _, alice_history = await texts_on_connect(alice)
    _, bob_history = await texts_on_connect(bob)
    assert alice_history["last_read"] == second.frame["id"]
    assert bob_history["last_read"] == first.frame["id"]
    assert alice_history["messages"] == bob_history["messages"]


async def test_a_reconnect_with_after_gets_exactly_what_it_missed_while_the_page_is_cached(
    channel_layer, room, alice
):
    seen = await apost(room, alice, "seen")
    await texts_on_connect(alice)  # the latest page is cached now
    for text in ("missed 1", "missed 2"):
        await apost(room, alice, text)
    texts, history = await texts_on_connect(alice, query=f"after={seen.frame['id']}")
    assert texts == ["missed 1", "missed 2"]
    assert history["after"] == seen.frame["id"]
    assert history["seq"] == 3


async def test_joining_presence_lists_the_room_before_and_after_in_order(transactional_db):
    before, after = await presence.join_and_list("lobby", "c1", "zoe")
    assert (before, after) == ([], ["zoe"])
    before, after = await presence.join_and_list("lobby", "c2", "adam")
    assert (before, after) == (["zoe"], ["adam", "zoe"])
    before, after = await presence.join_and_list("lobby", "c3", "zoe")  # a second tab
    assert (before, after) == (["adam", "zoe"], ["adam", "zoe"])
    assert await presence.users("lobby") == ["adam", "zoe"]


async def replay_on_connect(after: int, user=None) -> dict:
    socket, history = await join_room("general", user, query=f"after={after}")
    await socket.disconnect()
    return history


async def test_a_reconnect_within_the_latest_page_is_answered_from_it_exactly(
    channel_layer, room, alice
):
    events = [await apost(room, alice, f"m{n}") for n in range(10)]
    await texts_on_connect(alice)  # caches the page at seq 10
    reads = latest_pages.reads
    history = await replay_on_connect(events[6].frame["id"], alice)
    assert latest_pages.reads == reads  # no second read of the room
    assert [m["text"] for m in history["messages"]] == ["m7", "m8", "m9"]
    expected = await database_sync_to_async(services.replay_after)(
        alice, room, events[6].frame["id"], 10
    )
    assert history == {**expected, "last_read": 0, "seq": 10, "user": "alice"}
    assert list(history) == list({**expected, "last_read": 0, "seq": 10, "user": "alice"})


async def test_a_reconnect_behind_the_latest_page_gets_everything_it_missed(
    channel_layer, room, alice
):
    events = [await apost(room, alice, f"m{n}") for n in range(60)]
    await texts_on_connect()  # the latest page (m10..m59) is cached
    history = await replay_on_connect(events[3].frame["id"])
    assert [m["text"] for m in history["messages"]] == [f"m{n}" for n in range(4, 60)]
    assert history["after"] == events[3].frame["id"]
    assert history["has_more"] is False


async def test_a_reconnect_sees_edits_and_deletions_made_while_it_was_away(
    channel_layer, room, alice
):
    events = [await apost(room, alice, f"m{n}") for n in range(5)]
    await texts_on_connect()  # cached before the changes
    await database_sync_to_async(services.edit_message)(alice, room, events[3].frame["id"], "new")
    await database_sync_to_async(services.delete_message)(alice, events[4].frame["id"], room)
    history = await replay_on_connect(events[1].frame["id"])
    assert [(m["text"], m["edited"]) for m in history["messages"]] == [
        ("m2", False),
        ("new", True),
    ]
    assert history["seq"] == 7
