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

Bounded: at most MAX_ROOMS rooms, the least recently used dropped first. Called from the
database thread (`database_sync_to_async`); a lock keeps it safe from any thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from chat import protocol, services
from chat.models import Room
from realtime.generic.frames import encode_frame

MAX_ROOMS = 1024


class LatestPages:
    """Per room id: (seq, version, encoded latest page without its closing brace)."""

    def __init__(self, max_rooms: int = MAX_ROOMS) -> None:
        self.max_rooms = max_rooms
        self._pages: OrderedDict[int, tuple[int, tuple, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.reads = 0  # pages read from the database (what the tests observe)

    def frame_text(self, room: Room, seq: int, extra: dict[str, Any]) -> str:
        """The encoded `history` frame of `room`'s latest page as of `seq` (the `seq` read from
        the database in this transaction), with `extra` fields appended."""
        # The room's creation time tells a room from an earlier one that had the same id (a
        # test database rolled back); the page size is a setting a test may change.
        version = (room.created, protocol.HISTORY_PAGE_SIZE)
        with self._lock:
            cached = self._pages.get(room.pk)
            if cached is not None and cached[0] == seq and cached[1] == version:
                self._pages.move_to_end(room.pk)
                body = cached[2]
            else:
                body = None
        if body is None:
            body = encode_frame(services.history_page(room, upto_seq=seq))[:-1]
            self.reads += 1
            with self._lock:
                current = self._pages.get(room.pk)
                # Never replace a newer page by an older one (two sockets reading at once).
                if current is None or current[1] != version or current[0] <= seq:
                    self._pages[room.pk] = (seq, version, body)
                    self._pages.move_to_end(room.pk)
                while len(self._pages) > self.max_rooms:
                    self._pages.popitem(last=False)
        if not extra:
            return body + "}"
        return body + "," + encode_frame(extra)[1:]

    def clear(self) -> None:
        with self._lock:
            self._pages.clear()


latest_pages = LatestPages()
