"""Group commit (chat.posting): messages posted together are saved in one transaction, each
still answered on its own, numbered without gaps, in order, and committed before it is
broadcast."""

import asyncio
from datetime import timedelta

import pytest
from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from chat import posting, protocol, services
from chat.models import Message, Mute, Room
from chat.services import ChatError
from chat.tests.conftest import join_room, make_user, next_of_type
from realtime.db import database_sync_to_async

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def commits(monkeypatch):
    """Every commit of the database, in order, with the messages it made lasting."""
    log: list[str] = []
    original = BaseDatabaseWrapper.commit

    def commit(self):
        log.append("commit")
        return original(self)

    monkeypatch.setattr(BaseDatabaseWrapper, "commit", commit)
    return log


@pytest.fixture
def rooms(transactional_db):
    return [Room.objects.create(slug=f"room{n}", title=f"Room {n}") for n in range(3)]


def saved(room) -> list[tuple[int, str]]:
    return list(Message.objects.filter(room=room).order_by("seq").values_list("seq", "text"))


async def test_messages_posted_together_across_rooms_are_one_commit_each_answered(
    rooms, alice, bob, commits
):
    posts = [posting.post((alice, bob)[n % 2], rooms[n % 3], f"m{n}", f"c{n}") for n in range(9)]
    events = await asyncio.gather(*posts)
    assert commits == ["commit"]
    assert [(e.room, e.frame["text"], e.frame["client_id"]) for e in events] == [
        (f"room{n % 3}", f"m{n}", f"c{n}") for n in range(9)
    ]
    for r, room in enumerate(rooms):
        texts = [f"m{n}" for n in range(9) if n % 3 == r]
        assert await database_sync_to_async(saved)(room) == list(enumerate(texts, 1))


async def test_one_senders_messages_keep_their_order_within_and_across_batches(room, alice):
    first = [posting.post(alice, room, f"a{n}") for n in range(5)]
    events = await asyncio.gather(*first)
    events += await asyncio.gather(*(posting.post(alice, room, f"b{n}") for n in range(5)))
    texts = [f"a{n}" for n in range(5)] + [f"b{n}" for n in range(5)]
    assert [e.frame["text"] for e in events] == texts
    assert [e.seq for e in events] == list(range(1, 11))
    assert await database_sync_to_async(saved)(room) == list(enumerate(texts, 1))


async def test_a_refused_message_gets_its_own_error_and_the_others_are_saved(rooms, alice, bob):
    await database_sync_to_async(Mute.objects.create)(
        user=bob, room=rooms[1], until=timezone.now() + timedelta(minutes=5)
    )
    answers = await asyncio.gather(
        posting.post(alice, rooms[1], "before"),
        posting.post(bob, rooms[1], "muted"),
        posting.post(alice, rooms[1], ""),
        posting.post(alice, rooms[1], "reply", reply_to=999_999),
        posting.post(alice, rooms[1], "after"),
        return_exceptions=True,
    )
    assert [a.frame["text"] for a in (answers[0], answers[4])] == ["before", "after"]
    assert [(type(a), a.code) for a in answers[1:4]] == [
        (ChatError, protocol.MUTED),
        (ChatError, protocol.EMPTY),
        (ChatError, protocol.NOT_FOUND),
    ]
    assert [answers[0].seq, answers[4].seq] == [1, 2]
    assert await database_sync_to_async(saved)(rooms[1]) == [(1, "before"), (2, "after")]


async def test_a_batch_is_stopped_by_exactly_the_mutes_that_apply_now(rooms, alice, bob):
    """The batch reads every poster's mutes in one query: a mute in the room or in every room
    stops a message; one in another room or one that has ended does not."""
    carol, dave, erin = await asyncio.gather(
        *(database_sync_to_async(make_user)(name) for name in ("carol", "dave", "erin"))
    )
    now = timezone.now()
    for user, room, until in [
        (alice, rooms[0], now + timedelta(minutes=5)),  # here
        (bob, None, now + timedelta(minutes=5)),  # everywhere
        (carol, rooms[1], now + timedelta(minutes=5)),  # in another room
        (dave, rooms[0], now - timedelta(seconds=1)),  # ended
    ]:
        await database_sync_to_async(Mute.objects.create)(user=user, room=room, until=until)
    answers = await asyncio.gather(
        *(posting.post(user, rooms[0], user.username) for user in (alice, bob, carol, dave, erin)),
        posting.post(carol, rooms[1], "carol, muted here"),
        return_exceptions=True,
    )
    outcome = [a.code if isinstance(a, ChatError) else a.frame["text"] for a in answers]
    assert outcome == [protocol.MUTED, protocol.MUTED, "carol", "dave", "erin", protocol.MUTED]
    assert "muted you in every room" in str(answers[1])
    assert [text for _, text in await database_sync_to_async(saved)(rooms[0])] == [
        "carol",
        "dave",
        "erin",
    ]


async def test_a_message_the_database_refuses_takes_no_number_and_spares_the_others(
    rooms, alice, monkeypatch
):
    """It failed after taking the room's next seq: its savepoint gives the number back."""
    original = services._insert

    def insert(instance):
        if getattr(instance, "text", None) == "boom":
            raise DatabaseError("disk on fire")
        return original(instance)

    monkeypatch.setattr(services, "_insert", insert)
    answers = await asyncio.gather(
        *(posting.post(alice, rooms[0], text) for text in ("one", "boom", "two")),
        posting.post(alice, rooms[2], "elsewhere"),
        return_exceptions=True,
    )
    assert isinstance(answers[1], DatabaseError)
    assert [(a.seq, a.frame["text"]) for a in (answers[0], answers[2])] == [(1, "one"), (2, "two")]
    assert answers[3].frame["text"] == "elsewhere"
    assert await database_sync_to_async(saved)(rooms[0]) == [(1, "one"), (2, "two")]
    room = await database_sync_to_async(Room.objects.get)(pk=rooms[0].pk)
    assert room.seq == 2


async def test_when_the_commit_fails_every_message_of_the_batch_gets_the_error_and_none_is_saved(
    rooms, alice, monkeypatch
):
    original = BaseDatabaseWrapper.commit
    failed = []

    def commit(self):
        if not failed:
            failed.append(True)
            raise DatabaseError("commit refused")
        return original(self)

    monkeypatch.setattr(BaseDatabaseWrapper, "commit", commit)
    answers = await asyncio.gather(
        *(posting.post(alice, rooms[n], f"m{n}") for n in range(3)), return_exceptions=True
    )
    assert all(isinstance(a, DatabaseError) for a in answers)
    for room in rooms:
        assert await database_sync_to_async(saved)(room) == []
    event = await posting.post(alice, rooms[0], "again")
    assert event.seq == 1


async def test_messages_sent_on_sockets_of_several_rooms_are_committed_before_each_broadcast(
    rooms, monkeypatch, commits
):
    """Each socket's message reaches its room only after a commit that followed its save."""
    from chat import broadcast

    log = commits
    original_insert, original_broadcast = services._insert, broadcast.broadcast_room_event

    def insert(instance):
        original_insert(instance)
        log.append(f"saved {instance.text}")

    async def broadcast_room_event(layer, message):
        log.append(f"broadcast {message['room']}")
        await original_broadcast(layer, message)

    monkeypatch.setattr(services, "_insert", insert)
    monkeypatch.setattr(broadcast, "broadcast_room_event", broadcast_room_event)
    users = [await database_sync_to_async(make_user)(f"poster{n}") for n in range(3)]
    sockets = [(await join_room(f"room{n}", users[n]))[0] for n in range(3)]
    log.clear()
    for n, socket in enumerate(sockets):
        await socket.send_json_to({"type": "message", "text": f"hi {n}", "client_id": f"k{n}"})
    for n, socket in enumerate(sockets):
        frame = await next_of_type(socket, protocol.MESSAGE, timeout=5)
        assert (frame["room"], frame["text"]) == (f"room{n}", f"hi {n}")
    for n in range(3):
        saved_at = log.index(f"saved hi {n}")
        broadcast_at = log.index(f"broadcast room{n}")
        assert "commit" in log[saved_at:broadcast_at], log
    for socket in sockets:
        await socket.disconnect()


async def test_a_retry_in_the_same_batch_or_of_a_stored_message_gets_the_stored_message(
    rooms, alice, bob
):
    """Posting stays idempotent on (room, user, client_id) in a batch: the copy is answered
    with the stored message (for its sender alone), takes no seq and saves no second row."""
    stored = await posting.post(alice, rooms[0], "first try", "k1")
    answers = await asyncio.gather(
        posting.post(alice, rooms[0], "first try", "k1"),  # already stored
        posting.post(alice, rooms[0], "new", "k2"),
        posting.post(alice, rooms[0], "new", "k2"),  # the same batch
        posting.post(bob, rooms[0], "bob's", "k2"),  # another user's client_id is their own
    )
    assert answers[0].echo and answers[0].frame["id"] == stored.frame["id"]
    assert not answers[1].echo and answers[1].seq == 2
    assert answers[2].echo and answers[2].frame["id"] == answers[1].frame["id"]
    assert not answers[3].echo and answers[3].seq == 3
    assert await database_sync_to_async(saved)(rooms[0]) == [
        (1, "first try"),
        (2, "new"),
        (3, "bob's"),
    ]
