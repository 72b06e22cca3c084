"""Full queues on the Redis layer, with the members of one room in two Daphne processes: bursts
broadcast faster than sockets drain overflow the members' channels (capacity 5, through the
SWITCHBOARD_LAYER_CAPACITY setting) in both processes. Every member still ends with every
message exactly once, in order: a gap is filled from the database when a later event reveals it,
and a drop at the end of a burst by the periodic check. The in-memory variant with 1,000 members
is chat/tests/test_delivery.py."""

from __future__ import annotations

import asyncio
import urllib.request

from tests.chat_client import ChatClient, create_room, room_message_ids

CAPACITY = 5
MEMBERS_PER_PROCESS = 30
BURSTS = (4 * CAPACITY, 1, 4 * CAPACITY)  # dropped in the middle, noticed by the next; at the end

BURST_SCRIPT = """
import time
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model
from chat.models import Room
from chat.broadcast import broadcast_room_event, room_event_message
from chat.services import post_message
from realtime.layers import get_channel_layer

author = get_user_model().objects.get_or_create(username="burster")[0]
room = Room.objects.get(slug="overflow")
layer = get_channel_layer()

async def broadcast(events):
    for event in events:  # no pause: far more than CAPACITY per member channel
        await broadcast_room_event(layer, room_event_message(event))

for count in BURSTS:
    events = [post_message(author, room, f"burst {n}") for n in range(count)]
    async_to_sync(broadcast)(events)
    time.sleep(0.05)
"""


def dropped(port: int) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    line = next(x for x in text.splitlines() if x.startswith("realtime_layer_dropped_total "))
    return float(line.split()[1])


def test_members_in_two_processes_get_every_message_once_in_order_despite_full_queues(
    live_server_factory, fresh_redis
):
    server = live_server_factory(
        redis_url=fresh_redis.url,
        SWITCHBOARD_APRS_REPLAY="",
        SWITCHBOARD_LAYER_CAPACITY=str(CAPACITY),
    )
    server.start_daphne()
    server.start_daphne()
    create_room(server, "overflow")

    async def scenario() -> list[ChatClient]:
        members = [
            ChatClient(
                f"ws://127.0.0.1:{port}", "overflow", "", origin=f"http://127.0.0.1:{port}",
                name=f"member-{port}-{n}",
            )
            for port in server.ports
            for n in range(MEMBERS_PER_PROCESS)
        ]  # fmt: skip
        await asyncio.gather(*(member.start() for member in members))
        await asyncio.to_thread(server.shell, f"BURSTS = {BURSTS!r}\n{BURST_SCRIPT}")
        saved = await asyncio.to_thread(room_message_ids, server, "overflow")
        assert len(saved) == sum(BURSTS)
        await asyncio.gather(
            *(member.wait_until(lambda c: len(c.ids) >= len(saved), 30) for member in members)
        )
        await asyncio.sleep(0.5)  # a duplicate or a late copy would arrive now
        await asyncio.gather(*(member.stop() for member in members))
        return members

    members = asyncio.run(scenario())
    saved = room_message_ids(server, "overflow")
    assert all(dropped(port) > 0 for port in server.ports), "no queue overflowed: nothing tested"
    for member in members:
        assert member.ids == saved, f"{member.name} is missing or misordering messages"
        assert member.duplicates == [] and member.out_of_order == [], member.name
        assert member.errors == [] and member.connects == 1, member.name
