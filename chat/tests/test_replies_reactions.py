"""Replies and reactions: what is saved and refused, the frames everyone gets live, and the
replay of a reconnecting socket."""

import pytest

from chat import membership, protocol, services
from chat.models import Reaction, Room
from chat.services import ChatError
from chat.tests.conftest import apost, join_room, make_user, next_of_type, open_socket
from realtime.db import database_sync_to_async

pytestmark = pytest.mark.django_db(transaction=True)

THUMBS, HEART = protocol.REACTION_EMOJI[0], protocol.REACTION_EMOJI[1]


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(ChatError) as error:
        call(*args, **kwargs)
    return error.value.code


def test_a_reply_quotes_the_original(room, alice, bob):
    original = services.post_message(alice, room, "x" * 300)
    reply = services.post_message(bob, room, "agreed", reply_to=original.frame["id"])
    assert reply.frame["reply_to"] == {
        "id": original.frame["id"],
        "user": "alice",
        "text": "x" * protocol.QUOTE_LENGTH,
        "deleted": False,
    }
    page = services.history_page(bob, room)
    assert page["messages"][1]["reply_to"]["id"] == original.frame["id"]


def test_a_reply_to_a_deleted_message_keeps_no_text(room, alice, bob):
    original = services.post_message(alice, room, "regrettable")
    services.post_message(bob, room, "what?", reply_to=original.frame["id"])
    services.delete_message(alice, original.frame["id"], room)
    [reply] = services.history_page(bob, room)["messages"]
    assert reply["reply_to"] == {
        "id": original.frame["id"],
        "user": "alice",
        "text": "",
        "deleted": True,
    }


def test_a_reply_must_answer_a_live_message_of_the_same_room(room, alice):
    other = Room.objects.create(slug="other")
    elsewhere = services.post_message(alice, other, "over there")
    assert (
        refused(services.post_message, alice, room, "re", reply_to=elsewhere.frame["id"])
        == protocol.NOT_FOUND
    )
    assert refused(services.post_message, alice, room, "re", reply_to="7") == protocol.INVALID
    assert not room.messages.exists()


def test_reactions_add_once_take_back_and_list_who(room, alice, bob):
    posted = services.post_message(alice, room, "ship it?")
    message_id = posted.frame["id"]
    first = services.react(bob, room, message_id, THUMBS)
    assert first.frame["reactions"] == [{"emoji": THUMBS, "users": ["bob"]}]
    assert services.react(bob, room, message_id, THUMBS) is None  # already there: no event
    second = services.react(alice, room, message_id, THUMBS)
    services.react(alice, room, message_id, HEART)
    assert second.seq == first.seq + 1
    back = services.react(bob, room, message_id, THUMBS, add=False)
    assert back.frame["reactions"] == [
        {"emoji": THUMBS, "users": ["alice"]},
        {"emoji": HEART, "users": ["alice"]},
    ]
    assert services.history_page(bob, room)["messages"][0]["reactions"] == back.frame["reactions"]


def test_reactions_are_refused_outside_the_set_for_anonymous_and_non_members(alice, bob):
    carol = make_user("carol")
    secret, _ = membership.create_private_room(alice, "Secret")
    posted = services.post_message(alice, secret, "members only")
    message_id = posted.frame["id"]
    assert refused(services.react, alice, secret, message_id, "💩") == protocol.INVALID
    assert refused(services.react, carol, secret, message_id, THUMBS) == protocol.NOT_MEMBER
    from django.contrib.auth.models import AnonymousUser

    assert (
        refused(services.react, AnonymousUser(), secret, message_id, THUMBS)
        == protocol.LOGIN_REQUIRED
    )
    assert not Reaction.objects.exists()


def test_reaction_changes_replay_in_order_with_edits(room, alice, bob):
    posted = services.post_message(alice, room, "v1")
    since = posted.seq
    services.react(bob, room, posted.frame["id"], THUMBS)
    services.edit_message(alice, room, posted.frame["id"], "v2")
    services.react(bob, room, posted.frame["id"], HEART)
    upto = Room.objects.get(pk=room.pk).seq
    frames = services.events_between(bob, room, since, upto)
    # The message's edit, then its latest reaction state (one frame: what it is now).
    assert [(f["type"], f["seq"]) for f in frames] == [
        (protocol.EDITED, since + 2),
        (protocol.REACTIONS, since + 3),
    ]
    assert frames[1]["reactions"] == [
        {"emoji": THUMBS, "users": ["bob"]},
        {"emoji": HEART, "users": ["bob"]},
    ]


async def test_replies_and_reactions_reach_everyone_live(channel_layer, room, alice, bob):
    writer, _ = await join_room("general", alice)
    reader, _ = await join_room("general", bob)
    await writer.send_json_to({"type": "message", "text": "lunch?", "client_id": "c-1"})
    original = await next_of_type(reader, protocol.MESSAGE)
    await reader.send_json_to(
        {"type": "message", "text": "yes", "client_id": "c-2", "reply_to": original["id"]}
    )
    assert (await next_of_type(writer, protocol.MESSAGE))["text"] == "lunch?"  # its own
    reply = await next_of_type(writer, protocol.MESSAGE)
    assert (reply["text"], reply["reply_to"]["text"]) == ("yes", "lunch?")
    await reader.send_json_to({"type": "react", "id": original["id"], "emoji": THUMBS})
    reacted = await next_of_type(writer, protocol.REACTIONS)
    assert (reacted["id"], reacted["reactions"]) == (
        original["id"],
        [{"emoji": THUMBS, "users": ["bob"]}],
    )
    await reader.send_json_to({"type": "unreact", "id": original["id"], "emoji": THUMBS})
    assert (await next_of_type(writer, protocol.REACTIONS))["reactions"] == []
    await reader.send_json_to({"type": "react", "id": original["id"], "emoji": "nope"})
    assert (await next_of_type(reader, protocol.ERROR))["code"] == protocol.INVALID
    await writer.disconnect()
    await reader.disconnect()


async def test_a_reconnect_replays_reactions_it_missed(channel_layer, room, alice, bob):
    posted = await apost(room, alice, "vote here")
    first, history = await join_room("general", bob)
    await first.disconnect()
    await database_sync_to_async(services.react)(alice, room, posted.frame["id"], HEART)
    socket = await open_socket(
        f"/ws/chat/general/?after={posted.frame['id']}&seq={history['seq']}", bob
    )
    assert (await socket.receive_json_from())["messages"] == []
    replayed = await socket.receive_json_from()
    assert replayed["type"] == protocol.REACTIONS
    assert replayed["reactions"] == [{"emoji": HEART, "users": ["alice"]}]
    await socket.disconnect()
