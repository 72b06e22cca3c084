"""Each room's latest history page, encoded once per process and reused until the room changes.

Every socket that opens a room without ``?after=`` (a first visit, a reload, a reconnect storm
after a deploy) starts with the same frame: the room's latest HISTORY_PAGE_SIZE visible messages
as of the room's ``seq``. Every lasting change of a room (a new message, an edit, a deletion)
takes the next ``seq`` in the same transaction (`chat.services._next_seq`), so the page read at
``seq`` S is the page of every socket that reads ``Room.seq == S``, in every process. The cache
keeps, per room, the last page's `seq` and its JSON text (without the closing brace); a socket
that reads another `seq` reads the page again and replaces the entry. Nothing has to invalidate
it: the key is the database's own counter.

A socket's own fields (``last_read``, ``seq``, ``user``) are appended to the shared text, so the
frame on the wire is the one `history_page` plus those fields would encode to, key for key.

A browser that reconnects with ``?after=<id>`` is answered from the same page when the page holds
everything it missed: when `id` is at least the page's oldest message id (messages are numbered
in order within a room, so every visible message newer than `id` is among the latest ones), or
when the page is the whole room. Otherwise (further behind) the caller reads the replay from the
database as before.

Bounded: at most MAX_ROOMS rooms, the least recently used dropped first. Called from the
database thread (`database_sync_to_async`); a lock keeps it safe from any thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from chat import protocol, services
from chat.models import Room
from realtime.generic.frames import encode_frame

MAX_ROOMS = 1024


@dataclass(frozen=True)
class Page:
    """A room's latest page as of `seq`: its encoded frame without the closing brace, and its
    message frames (shared by every socket: never changed after it is made)."""

    seq: int
    version: tuple
    body: str
    messages: list[dict]
    has_more: bool


class LatestPages:
    """Per room id: the latest page as of one seq (`Page`)."""

    def __init__(self, max_rooms: int = MAX_ROOMS) -> None:
        self.max_rooms = max_rooms
        self._pages: OrderedDict[int, Page] = OrderedDict()
        self._lock = threading.Lock()
        self.reads = 0  # pages read from the database (what the tests observe)

    def page(self, user: Any, room: Room, seq: int) -> Page:
        """`room`'s latest page as of `seq` (the `seq` read from the database in this
        transaction), from the cache or, the first time for that seq, from the database. The
        page is the same for every reader: the caller checks that `user` may read the room
        (`chat.access.require_member`) before it asks."""
        # The room's creation time tells a room from an earlier one that had the same id (a
        # test database rolled back); the page size is a setting a test may change.
        version = (room.created, protocol.HISTORY_PAGE_SIZE)
        with self._lock:
            cached = self._pages.get(room.pk)
            if cached is not None and cached.seq == seq and cached.version == version:
                self._pages.move_to_end(room.pk)
                return cached
        frame = services.history_page(user, room, upto_seq=seq)
        page = Page(seq, version, encode_frame(frame)[:-1], frame["messages"], frame["has_more"])
        self.reads += 1
        with self._lock:
            current = self._pages.get(room.pk)
            # Never replace a newer page by an older one (two sockets reading at once).
            if current is None or current.version != version or current.seq <= seq:
                self._pages[room.pk] = page
                self._pages.move_to_end(room.pk)
            while len(self._pages) > self.max_rooms:
                self._pages.popitem(last=False)
        return page

    def frame_text(self, user: Any, room: Room, seq: int, extra: dict[str, Any]) -> str:
        """The encoded `history` frame of `room`'s latest page as of `seq`, with `extra` fields
        appended."""
        body = self.page(user, room, seq).body
        if not extra:
            return body + "}"
        return body + "," + encode_frame(extra)[1:]

    def replay_text(
        self, user: Any, room: Room, seq: int, after: int, extra: dict[str, Any]
    ) -> str | None:
        """The encoded replay frame of `services.replay_after(user, room, after, seq)` with `extra`
        appended, when the latest page holds all of it; else None (ask `replay_after`)."""
        page = self.page(user, room, seq)
        messages = page.messages
        if page.has_more and (not messages or after < messages[0]["id"]):
            return None
        missed = [message for message in messages if message["id"] > after]
        if len(missed) > protocol.REPLAY_MAX_MESSAGES:
            return None  # too far behind to replay; replay_after says so
        frame = {
            "type": protocol.HISTORY,
            "room": room.slug,
            "messages": missed,
            "has_more": False,
            "after": after,
        }
        return encode_frame({**frame, **extra})

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()


latest_pages = LatestPages()
