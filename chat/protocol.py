"""The chat wire protocol: every frame type, error code, close code and limit, defined once.

Frames are JSON text. A room socket (``ws/chat/<room>/``) gets, on connect::

    {"type": "history", "messages": [{"type": "message", "id": 7, ...}], "has_more": false,
     "seq": 12, "last_read": 5}
    {"type": "presence", "room": "general", "users": ["alice", "bob"]}

and then, as things happen::

    {"type": "message", "id": 8, "room": "general", "user": "alice", "text": "hi @bob",
     "ts": "2026-11-23T12:00:00.123456+00:00", "client_id": "c-1", "kind": "message",
     "edited": false, "seq": 13}
    {"type": "typing", "room": "general", "user": "bob"}
    {"type": "edited", "id": 8, "room": "general", "text": "hi @bob!", "seq": 14}
    {"type": "deleted", "id": 8, "room": "general", "seq": 15}
    {"type": "error", "code": "rate_limited", "detail": "At most 10 messages per 5 seconds."}

The client sends ``message`` (text, client_id), ``typing``, ``history`` (before: an id, for older
pages), ``edit`` (id, text), ``delete`` (id) and ``read`` (id: the newest message it has shown).
``?after=<id>`` on the URL replaces the latest-50 history with exactly the messages newer than
``id``; adding ``&seq=<n>`` (the last ``seq`` seen) also replays the edits and deletions since.

The staff console (``ws/chat/admin/``) gets every room's ``message``/``edited``/``deleted`` and
``presence`` frames, plus ``audit`` (moderator actions) and ``stats`` frames, and sends ``delete``,
``mute`` (user, room or none for every room, minutes) and ``announce`` (text).

``seq`` numbers every lasting event of a room (new message, edit, delete) without gaps; the
server uses it to notice a broadcast it missed and to fetch that from the database.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta

# --- Frame types, client -> server -------------------------------------------------------------
MESSAGE = "message"
TYPING = "typing"
HISTORY = "history"
EDIT = "edit"
DELETE = "delete"
READ = "read"
MUTE = "mute"  # console only
ANNOUNCE = "announce"  # console only

ROOM_CLIENT_TYPES = frozenset({MESSAGE, TYPING, HISTORY, EDIT, DELETE, READ})
CONSOLE_CLIENT_TYPES = frozenset({DELETE, MUTE, ANNOUNCE})

# --- Frame types, server -> client -------------------------------------------------------------
# MESSAGE, TYPING and HISTORY as above, and:
PRESENCE = "presence"
EDITED = "edited"
DELETED = "deleted"
ERROR = "error"
AUDIT = "audit"  # console only
STATS = "stats"  # console only
ACK = "ack"  # console only: a moderator action was carried out

# Kinds of message.
KIND_MESSAGE = "message"
KIND_ANNOUNCEMENT = "announcement"

# --- Error codes (the "code" of an error frame) ------------------------------------------------
BAD_JSON = "bad_json"  # not JSON, not an object, or a binary frame
UNKNOWN_TYPE = "unknown_type"
INVALID = "invalid"  # a field is missing or has the wrong type
TOO_LONG = "too_long"
EMPTY = "empty"
RATE_LIMITED = "rate_limited"
LOGIN_REQUIRED = "login_required"
MUTED = "muted"
TOO_LARGE = "too_large"
NOT_FOUND = "not_found"
NOT_ALLOWED = "not_allowed"
SERVER_ERROR = "server_error"  # the server failed (database, layer); retrying may work

# --- Close codes -------------------------------------------------------------------------------
CLOSE_TOO_LARGE = 4009
CLOSE_LOGIN_REQUIRED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NO_SUCH_ROOM = 4404
# Sent by a web process that is shutting down (`manage.py serve` drains): the client reconnects at
# once, to another process, and sends again what it has not seen confirmed; frames still waiting
# in the closed socket's queue are therefore dropped, not handled (they would arrive twice).
CLOSE_SERVICE_RESTART = 1012

# --- Limits ------------------------------------------------------------------------------------
MAX_TEXT_LENGTH = 4000  # characters of one message
MAX_FRAME_BYTES = 64 * 1024  # one client frame, UTF-8 encoded
HISTORY_PAGE_SIZE = 50
REPLAY_CHUNK_SIZE = 500  # messages per history frame when replaying ?after=
EDIT_WINDOW = timedelta(minutes=10)
MAX_MUTE_MINUTES = 60 * 24 * 30
TYPING_INTERVAL_SECONDS = 2.0  # at most one typing broadcast per connection per interval
MAX_CLIENT_ID_LENGTH = 64

# --- Rooms -------------------------------------------------------------------------------------
ROOM_SLUG_PATTERN = r"[A-Za-z0-9_-]{1,50}"
ROOM_SLUG_RE = re.compile(rf"^{ROOM_SLUG_PATTERN}$")
RESERVED_ROOM_SLUGS = frozenset({"admin"})

# --- Channel-layer groups and event types (the interface between processes) -------------------
ADMIN_GROUP = "chat.admin"
# A lasting room event: {"type": EVENT_ROOM, "room": slug, "seq": n, "text": <encoded frame>}.
EVENT_ROOM = "chat.room_event"
# A passing event (typing, presence): {"type": EVENT_TRANSIENT, "text": <encoded frame>}.
EVENT_TRANSIENT = "chat.transient"


def room_group(slug: str) -> str:
    """The channel-layer group of one room's sockets."""
    return f"chat.room.{slug}"


def encode(frame: dict) -> str:
    """Encode a server frame as the JSON text sent on the wire (compact, UTF-8 kept as is)."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))
