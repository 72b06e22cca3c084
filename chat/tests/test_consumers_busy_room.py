"""A busy room: members whose queues overflow still get every message, once, in order."""

import asyncio

import pytest

import chat.delivery
from chat import protocol
from chat.services import broadcast_room_event, post_message, room_event_message
from chat.tests.conftest import join_room
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
    assert all(await asyncio.gather(*(m.receive_nothing(0.3) for m in members[:20])))
    await asyncio.gather(*(m.disconnect() for m in members))
