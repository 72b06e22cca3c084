"""Posting from sockets with group commit: messages that arrive together are saved together.

With a hundred busy rooms a process receives messages faster than one-at-a-time saving serves
them cheaply: each message paid a hop to the database thread and a commit of its own. Here the
messages posted while one save is in flight are saved as the next batch (`realtime.batching`), in
one hop and one transaction, each still through `services.post_message` (every check, the
room's next `seq`, the plain INSERT), and each inside a savepoint of its own::

    BEGIN
      SAVEPOINT; post room 3 "hi"         -> RoomEvent(room 3, seq 41)
      SAVEPOINT; post room 3 "muted!"     -> ChatError(muted)      rolled back to its savepoint
      SAVEPOINT; post room 9 "hello"      -> RoomEvent(room 9, seq 7)
    COMMIT                                -> now each caller gets its own answer and broadcasts

So a message is committed before it is broadcast (a caller gets its event only after the
commit); a message that fails (a check, or the database refusing its rows) gets its own error
and takes no `seq` (its savepoint is rolled back: the room's numbers stay gapless), and the
others of its batch are saved as if it had not been sent; if the commit itself fails, every
message of the batch gets that error and none is broadcast. Messages of one room are saved in
the order they arrived, so one sender's messages keep their order. The rooms are locked in the
order of their ids (each room's messages still in arrival order), so two processes' batches
never wait for each other's locks in a cycle on PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction

from chat import services
from chat.models import Room
from realtime.batching import Batcher
from realtime.db import database_sync_to_async

# Messages saved by one transaction at most.
BATCH_SIZE = 200


@dataclass(frozen=True)
class PostRequest:
    """One message to save: what `services.post_message` takes."""

    user: Any
    room: Room
    text: Any
    client_id: Any = ""
    reply_to: Any = None
    attachment_ids: Any = None


def post_messages(requests: list[PostRequest]) -> list[services.RoomEvent | Exception]:
    """Save `requests` in one transaction, each in its own savepoint (module docstring); the
    answers in the order of `requests`. Runs in the database thread."""
    answers: list[services.RoomEvent | Exception] = [None] * len(requests)  # type: ignore[list-item]
    order = sorted(range(len(requests)), key=lambda index: requests[index].room.pk)
    with transaction.atomic():
        # Every poster's mutes in one query, in this transaction (a mute committed before it
        # stops the message, as post_message's own check would).
        muted = services.muted_posters(
            [(r.user, r.room) for r in requests if getattr(r.user, "is_authenticated", False)]
        )
        for index in order:
            request = requests[index]
            try:
                with transaction.atomic():
                    answers[index] = services.post_message(
                        request.user,
                        request.room,
                        request.text,
                        request.client_id,
                        reply_to=request.reply_to,
                        attachment_ids=request.attachment_ids,
                        muted=(request.user.pk, request.room.pk) in muted,
                    )
            except Exception as error:
                answers[index] = error
    return answers  # every index was answered


async def _save_batch(requests: list[PostRequest]) -> list[services.RoomEvent | Exception]:
    return await database_sync_to_async(post_messages)(requests)


_batcher: Batcher[PostRequest, services.RoomEvent] = Batcher(_save_batch, max_size=BATCH_SIZE)


async def post(
    user: Any,
    room: Room,
    text: Any,
    client_id: Any = "",
    reply_to: Any = None,
    attachment_ids: Any = None,
) -> services.RoomEvent:
    """Save a message as `services.post_message` does, with the messages posted meanwhile, and
    return its event once it is committed (or raise its error)."""
    return await _batcher.submit(PostRequest(user, room, text, client_id, reply_to, attachment_ids))


__all__ = ["BATCH_SIZE", "PostRequest", "post", "post_messages"]
