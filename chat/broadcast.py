"""Sending committed chat events to the sockets, through the channel layer.

A change is committed before it is broadcast (`chat.services` returns the `RoomEvent`), and a
broadcast is encoded to JSON once: the layer message carries the finished text, and every member
forwards it as it is. Layer messages (see `chat.protocol`)::

    {"type": "chat.room_event", "room": "general", "seq": 13, "text": "{\"type\":\"message\",...}"}
    {"type": "chat.transient", "text": "{\"type\":\"typing\",...}"}

Room events go to the room's group and to the console group (a private room's or DM's to the
group of consoles that may read them); transient frames (typing, presence, audit entries) to the
groups given. A room event that ends someone's access also goes, as ``chat.access_lost``, to that
account's group, so their sockets on the room close in every process.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync

from chat import protocol
from chat.models import AuditEntry
from chat.services import RoomEvent
from realtime.accounts import account_group
from realtime.layers import get_channel_layer

logger = logging.getLogger(__name__)


def room_event_message(event: RoomEvent) -> dict:
    """The channel-layer message of a room event, its frame encoded once."""
    message = {
        "type": protocol.EVENT_ROOM,
        "room": event.room,
        "seq": event.seq,
        "text": protocol.encode(event.frame),
    }
    if event.private:
        message["private"] = True
    if event.revoke is not None:
        message["revoke"] = event.revoke
    return message


async def broadcast_room_event(layer: Any, message: dict) -> None:
    """Send a room event message (see room_event_message) to the room's sockets and the console;
    an event that ends a user's access first tells that account's sockets."""
    if message.get("revoke") is not None:
        await layer.group_send(
            account_group(message["revoke"]),
            {"type": protocol.EVENT_ACCESS_LOST, "room": message["room"]},
        )
    console = protocol.ADMIN_PRIVATE_GROUP if message.get("private") else protocol.ADMIN_GROUP
    await send_to_groups(layer, [protocol.room_group(message["room"]), console], message)


async def send_to_groups(layer: Any, groups: list[str], message: dict) -> None:
    """`message` to each of `groups`, in order: with one round trip on our layers
    (`group_send_many`), one group after the other on any other (channels_redis)."""
    send_many = getattr(layer, "group_send_many", None)
    if send_many is not None:
        await send_many(groups, message)
    else:
        for group in groups:
            await layer.group_send(group, message)


def publish_membership(events: list[RoomEvent]) -> None:
    """Broadcast committed membership events from sync code (the membership views). The changes
    are saved: a layer failure is logged and sockets catch up with the next event, and a removed
    user's sockets still fail the check of every later read."""
    layer = get_channel_layer()
    if layer is None or not events:
        return

    async def send_all() -> None:
        for event in events:
            await broadcast_room_event(layer, room_event_message(event))

    try:
        async_to_sync(send_all)()
    except Exception:
        logger.exception("chat: broadcasting membership events of %s failed", events[0].room)


async def broadcast_transient(layer: Any, groups: list[str], frame: dict) -> None:
    """Send a passing frame (typing, presence), encoded once, to `groups`."""
    message = {"type": protocol.EVENT_TRANSIENT, "text": protocol.encode(frame)}
    await send_to_groups(layer, groups, message)


async def broadcast_audit(layer: Any, entry: AuditEntry) -> None:
    frame = {"type": protocol.AUDIT, "entries": [entry.as_frame()]}
    await broadcast_transient(layer, [protocol.ADMIN_GROUP], frame)
