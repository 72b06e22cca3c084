"""chat.delivery: sockets that missed broadcasts (full queues, lost publishes) catch up from the
database and deliver every message once, in order, even in a busy room of 1,000."""

import asyncio
import json

import pytest

import chat.delivery
from chat import protocol
from chat.broadcast import broadcast_room_event, room_event_message
from chat.services import post_message
from chat.tests.conftest import apost, frames_within, join_room, next_of_type
from realtime.db import database_sync_to_async

pytestmark = pytest.mark.django_db(transaction=True)

MEMBERS = 1000
CAPACITY = 10


@pytest.fixture
def small_queues(settings):
    """An in-memory layer whose channels hold only CAPACITY messages, so bursts overflow."""
    from realtime.layers import get_channel_layer

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "realtime.layers.memory.InMemoryChannelLayer",
            "CONFIG": {"capacity": CAPACITY},
        }
    }
    return get_channel_layer()


async def receive_messages(socket, count: int) -> list[int]:
    ids = []
    while len(ids) < count:
        frame = await socket.receive_json_from(timeout=30)
        if frame["type"] == protocol.MESSAGE:
            ids.append(frame["id"])
    return ids


async def test_thousand_members_each_get_every_message_in_order_despite_drops(
    small_queues, room, alice, monkeypatch
):
    monkeypatch.setattr(chat.delivery, "CHECK_SECONDS", 0.3)
    # No periodic resync during the test: the drop at the end of the last burst must be found
    # by the check of the layer's drop count, not by a resync that would refill anything.
    monkeypatch.setattr(chat.delivery, "RESYNC_SECONDS", 3600)

    members = [(await join_room("general"))[0] for _ in range(MEMBERS)]

    async def burst(count: int) -> list:
        events = [
            await database_sync_to_async(post_message)(alice, room, f"burst {n}")
            for n in range(count)
        ]
        for event in events:  # no pause: far more than CAPACITY per member queue
            await broadcast_room_event(small_queues, room_event_message(event))
        return events

    events = await burst(2 * CAPACITY)  # dropped in the middle ...
    await asyncio.sleep(0.05)
    events += await burst(1)  # ... noticed by the gap before this one
    events += await burst(2 * CAPACITY)  # dropped at the end: caught by the periodic check
    assert small_queues.stats()["dropped"] >= MEMBERS  # every member missed some

    expected = [event.frame["id"] for event in events]
    received = await asyncio.gather(*(receive_messages(m, len(expected)) for m in members))
    assert all(ids == expected for ids in received)
    # Nothing more (a duplicate, a late copy of a caught-up event) for any member.
    assert all(await asyncio.gather(*(m.receive_nothing(0.3) for m in members)))
    await asyncio.gather(*(m.disconnect() for m in members))


async def test_member_that_missed_broadcasts_catches_up_from_database(channel_layer, room, alice):
    """A full queue drops group messages for that member; it refills the gap from the database."""
    reader, _ = await join_room("general", alice)
    # Saved events the reader never got (as if its queue had been full while they were sent).
    missed = [await apost(room, alice, f"missed {n}") for n in range(3)]
    latest = await apost(room, alice, "latest")
    await broadcast_room_event(channel_layer, room_event_message(latest))
    texts = [(await next_of_type(reader, protocol.MESSAGE))["text"] for _ in range(4)]
    assert texts == [m.frame["text"] for m in missed] + ["latest"]
    await reader.disconnect()


async def test_duplicate_broadcast_is_delivered_once(channel_layer, room, alice):
    reader, _ = await join_room("general", alice)
    event = await apost(room, alice, "once")
    await broadcast_room_event(channel_layer, room_event_message(event))
    await broadcast_room_event(channel_layer, room_event_message(event))
    assert (await next_of_type(reader, protocol.MESSAGE))["text"] == "once"
    assert protocol.MESSAGE not in [f["type"] for f in await frames_within(reader)]
    await reader.disconnect()


async def test_broadcast_lost_without_trace_is_caught_up_by_the_periodic_resync(
    channel_layer, room, alice, monkeypatch
):
    """A Redis restart can lose a publish without any counter noticing; the resync finds it."""
    monkeypatch.setattr(chat.delivery, "CHECK_SECONDS", 0.1)
    monkeypatch.setattr(chat.delivery, "RESYNC_SECONDS", 0.3)
    reader, _ = await join_room("general", alice)
    lost = await apost(room, alice, "never broadcast")  # saved, but no group_send at all
    frame = await next_of_type(reader, protocol.MESSAGE, timeout=3)
    assert (frame["id"], frame["text"]) == (lost.frame["id"], "never broadcast")
    await reader.disconnect()


async def test_resync_leaves_alone_events_still_on_their_way(
    channel_layer, room, alice, monkeypatch
):
    """An event committed but not yet broadcast when the resync looks is not read from the
    database: it arrives live, once, and no socket made a trip to the database for it."""
    monkeypatch.setattr(chat.delivery, "CHECK_SECONDS", 0.05)
    monkeypatch.setattr(chat.delivery, "RESYNC_SECONDS", 0.05)
    monkeypatch.setattr(chat.delivery, "DELIVERY_GRACE_SECONDS", 0.6)
    reads = []
    real_frames = chat.delivery.catch_up_reader.frames

    async def counted_frames(*args):
        reads.append(args)
        return await real_frames(*args)

    monkeypatch.setattr(chat.delivery.catch_up_reader, "frames", counted_frames)
    reader, _ = await join_room("general", alice)
    event = await apost(room, alice, "in flight")
    await asyncio.sleep(0.2)  # the resync reads the room's seq meanwhile
    await broadcast_room_event(channel_layer, room_event_message(event))
    assert (await next_of_type(reader, protocol.MESSAGE))["text"] == "in flight"
    await asyncio.sleep(0.8)  # past the grace of the resync that saw the event committed
    assert protocol.MESSAGE not in [f["type"] for f in await frames_within(reader)]
    assert reads == []
    await reader.disconnect()


async def test_sockets_that_missed_the_same_range_share_one_database_read(
    channel_layer, room, alice, monkeypatch
):
    reads = []
    real_read = chat.delivery._events_between_slug

    def counted_read(*args):
        reads.append(args)
        return real_read(*args)

    monkeypatch.setattr(chat.delivery, "_events_between_slug", counted_read)
    events = [await apost(room, alice, f"missed {n}") for n in range(3)]
    reader = chat.delivery.CatchUpReader()
    first, last = events[0].seq - 1, events[-1].seq
    texts = await asyncio.gather(*(reader.frames("general", first, last) for _ in range(10)))
    assert len(reads) == 1
    assert all(t == texts[0] and len(t) == 3 for t in texts)
    assert reader.events_caught_up == 30  # three events for each of the ten sockets


class FakeSocket:
    """What SocketWatch needs of a chat socket; counts its ticks, may fail them."""

    def __init__(self, layer, failing: bool = False) -> None:
        self.loop = asyncio.get_running_loop()
        self.channel_layer = layer
        self.last_seq: dict[str, int] = {}
        self.failing = failing
        self.ticks = 0

    async def catch_up_to(self, current: dict[str, int]) -> None:
        pass

    async def tick(self) -> None:
        self.ticks += 1
        if self.failing:
            raise RuntimeError("this socket's periodic work failed")


async def test_a_socket_whose_periodic_work_fails_stops_no_other_socket(
    channel_layer, monkeypatch, caplog
):
    monkeypatch.setattr(chat.delivery, "CHECK_SECONDS", 0.02)
    watch = chat.delivery.SocketWatch()
    broken, healthy = FakeSocket(channel_layer, failing=True), FakeSocket(channel_layer)
    watch.add(broken)
    watch.add(healthy)
    deadline = asyncio.get_running_loop().time() + 5
    while healthy.ticks < 5 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    assert healthy.ticks >= 5 and broken.ticks >= 5
    assert "periodic work of a socket failed" in caplog.text
    watch.discard(broken)
    watch.discard(healthy)


async def test_the_watch_reads_the_database_only_when_something_was_dropped_or_a_resync_is_due(
    channel_layer, room, alice, monkeypatch
):
    """A quiet, healthy room costs no database reads between resyncs."""
    monkeypatch.setattr(chat.delivery, "CHECK_SECONDS", 0.02)
    monkeypatch.setattr(chat.delivery, "RESYNC_SECONDS", 3600)
    reads = []
    real_seqs = chat.delivery._seqs_of
    monkeypatch.setattr(
        chat.delivery, "_seqs_of", lambda rooms: reads.append(rooms) or real_seqs(rooms)
    )
    socket, _ = await join_room("general", alice)
    await asyncio.sleep(0.3)  # some fifteen checks
    assert reads == []
    await socket.disconnect()


async def test_the_watch_tells_the_rooms_its_sockets_show_when_a_dead_processs_user_expires(
    channel_layer, settings, fresh_redis, monkeypatch
):
    from chat.presence import Presence

    settings.REDIS_URL = fresh_redis.url
    monkeypatch.setattr(chat.delivery, "CHECK_SECONDS", 0.05)
    settings.CHAT_PRESENCE_TTL_SECONDS = 0.05  # the dead process's last heartbeat
    await Presence().join("general", "dead-1", "ghost")
    settings.CHAT_PRESENCE_TTL_SECONDS = 90
    inbox = await channel_layer.new_channel()
    await channel_layer.group_add(protocol.room_group("general"), inbox)
    observer = FakeSocket(channel_layer)
    observer.last_seq = {"general": 0, "quiet": 0}
    watch = chat.delivery.SocketWatch()
    watch.add(observer)
    event = await asyncio.wait_for(channel_layer.receive(inbox), 5)
    watch.discard(observer)
    frame = json.loads(event["text"])
    assert (frame["type"], frame["room"], frame["users"]) == (protocol.PRESENCE, "general", [])
