"""Sending committed chat events to the sockets, through the channel layer.

A change is committed before it is broadcast (`chat.services` returns the `RoomEvent`), and a
broadcast is encoded to JSON once: the layer message carries the finished text, and every member
forwards it as it is. Layer messages (see `chat.protocol`)::

    {"type": "chat.room_event", "room": "general", "seq": 13, "text": "{\"type\":\"message\",...}"}
    {"type": "chat.transient", "text": "{\"type\":\"typing\",...}"}

Room events go to the room's group and to the console group; transient frames (typing, presence,
audit entries) to the groups given.
"""

from __future__ import annotations

from typing import Any

from chat import protocol
from chat.models import AuditEntry
from chat.services import RoomEvent


def room_event_message(event: RoomEvent) -> dict:
    """The channel-layer message of a room event, its frame encoded once."""
    return {
        "type": protocol.EVENT_ROOM,
        "room": event.room,
        "seq": event.seq,
        "text": protocol.encode(event.frame),
    }


async def broadcast_room_event(layer: Any, message: dict) -> None:
    """Send a room event message (see room_event_message) to the room's sockets and the console."""
    await layer.group_send(protocol.room_group(message["room"]), message)
    await layer.group_send(protocol.ADMIN_GROUP, message)


async def broadcast_transient(layer: Any, groups: list[str], frame: dict) -> None:
    """Send a passing frame (typing, presence), encoded once, to `groups`."""
    message = {"type": protocol.EVENT_TRANSIENT, "text": protocol.encode(frame)}
    for group in groups:
        await layer.group_send(group, message)


async def broadcast_audit(layer: Any, entry: AuditEntry) -> None:
    frame = {"type": protocol.AUDIT, "entries": [entry.as_frame()]}
    await broadcast_transient(layer, [protocol.ADMIN_GROUP], frame)
