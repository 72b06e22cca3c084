"""The chat wire protocol: every frame type, error code, close code and limit, defined once.

Frames are JSON text. A room socket (``ws/chat/<room>/``) gets, on connect::

    {"type": "history", "messages": [{"type": "message", "id": 7, ...}], "has_more": false,
     "seq": 12, "last_read": 5, "user": "alice"}
    {"type": "presence", "room": "general", "users": ["alice", "bob"]}

and then, as things happen::

    {"type": "message", "id": 8, "room": "general", "user": "alice", "text": "hi @bob",
     "ts": "2026-11-23T12:00:00.123456+00:00", "client_id": "c-1", "kind": "message",
     "edited": false, "seq": 13}
    {"type": "typing", "room": "general", "user": "bob"}
    {"type": "edited", "id": 8, "room": "general", "text": "hi @bob!", "seq": 14}
    {"type": "deleted", "id": 8, "room": "general", "seq": 15}
    {"type": "error", "code": "rate_limited", "detail": "At most 10 messages per 5 seconds."}

The client sends ``message`` (text, client_id, and reply_to: the id of the message it answers),
``typing``, ``history`` (before: an id, for older pages), ``edit`` (id, text), ``delete`` (id),
``read`` (id: the newest message it has shown), and ``react`` / ``unreact`` (id, emoji: one of
REACTION_EMOJI). A ``message`` frame carries ``reply_to`` (null, or a quote of the original:
``{"id", "user", "text": its first QUOTE_LENGTH characters, "deleted"}``) and ``reactions``
(``[{"emoji": "👍", "users": ["bob", "carol"]}]``); a change of a message's reactions is a lasting
room event that carries them all::

    {"type": "reactions", "id": 8, "room": "general", "reactions": [{"emoji": "👍",
     "users": ["bob"]}], "seq": 17}
A ``message`` frame also carries ``attachments``: the files posted with it (an empty list for
most messages)::

    "attachments": [{"id": 3, "name": "harbour.jpg", "size": 482113, "content_type": "image/jpeg",
                     "url": "/attachments/3/", "thumbnail_url": "/attachments/3/thumbnail/",
                     "width": 1600, "height": 1200},
                    {"id": 4, "name": "minutes.pdf", "size": 90211,
                     "content_type": "application/pdf", "url": "/attachments/4/",
                     "thumbnail_url": null, "width": null, "height": null}]

A file is uploaded over HTTP first (``POST /rooms/<room>/attachments/``, a multipart form with one
``file``; docs/protocols/chat.md), which answers its entry as above; the client then sends
``message`` with ``"attachments": [3, 4]`` (ids of its own uploads to this room not attached to
any message yet, at most MAX_ATTACHMENTS_PER_MESSAGE; the text may then be empty). Anything else
is refused with ``not_found`` and nothing is posted.

The opening ``history`` frame's ``user`` is who the socket is (null: anonymous); a page compares it
with who it was rendered for, to notice a login that ended while it was away (``last_read`` is
only there for a logged-in user). ``?after=<id>`` on the URL replaces the latest-50 history with
exactly the messages newer than ``id`` (a ``history`` frame with ``"after": id``); adding
``&seq=<n>`` (the last ``seq`` seen) also replays the edits and deletions since. A client more
than REPLAY_MAX_MESSAGES messages (or REPLAY_MAX_EVENTS events) behind gets the latest page
instead, without ``after``: it starts over, as on a first visit, and pages back with ``history``
``before``.

The staff console (``ws/chat/admin/``) gets every room's ``message``/``edited``/``deleted`` and
``presence`` frames, plus ``audit`` (moderator actions) and ``stats`` frames, and sends ``delete``,
``mute`` (user, room or none for every room, minutes) and ``announce`` (text).

``seq`` numbers every lasting event of a room (new message, edit, delete, membership change)
without gaps; the server uses it to notice a broadcast it missed and to fetch that from the
database.

Private rooms and direct messages (``kind`` "private" or "dm") are read only by their joined
members (`chat.access`). A socket of anyone else is accepted, sent an error ``not_member`` and
closed with 4403 before it joins the room. Membership changes are lasting room events, replayed
like edits::

    {"type": "member", "room": "p-3f2a9c1b7d0e", "user": "bob", "action": "invited", "by": "alice",
     "seq": 16}

Actions: ``invited``, ``joined`` (accepted, or added when a room or DM is created), ``declined``,
``left`` and ``removed``. A member who leaves or is removed has every socket on that room closed
with 4403 at once, in every process (the layer event ``chat.access_lost`` to the account's group).
The staff console gets the message events of private rooms only with the permission
``chat.view_private_messages`` (see docs/apps/chat.md for the policy).

What of a room notifies its reader (desktop notifications, mention notifications in the bell,
e-mail about unread mentions and DMs: `chat.attention`) is the reader's choice per room, one of
NOTIFY_LEVELS. A logged-in member sets it on the room socket and gets the same frame back::

    {"type": "notify", "level": "all"}                       (client -> server)
    {"type": "notify", "room": "general", "level": "all"}    (server -> client)
"""

from __future__ import annotations

import re
from datetime import timedelta

from realtime.generic import frames

# --- Frame types, client -> server -------------------------------------------------------------
MESSAGE = "message"
TYPING = "typing"
HISTORY = "history"
EDIT = "edit"
DELETE = "delete"
READ = "read"
REACT = "react"  # {"type": "react", "id": 8, "emoji": "👍"}: add your reaction
UNREACT = "unreact"  # the same fields: take your reaction back
MUTE = "mute"  # console only
ANNOUNCE = "announce"  # console only
NOTIFY = "notify"  # {"type": "notify", "level": "mentions"}: what of this room notifies you

ROOM_CLIENT_TYPES = frozenset(
    {MESSAGE, TYPING, HISTORY, EDIT, DELETE, READ, REACT, UNREACT, NOTIFY}
)
CONSOLE_CLIENT_TYPES = frozenset({DELETE, MUTE, ANNOUNCE})

# --- Frame types, server -> client -------------------------------------------------------------
# MESSAGE, TYPING and HISTORY as above, and:
PRESENCE = "presence"
EDITED = "edited"
DELETED = "deleted"
ERROR = frames.ERROR
AUDIT = "audit"  # console only
STATS = "stats"  # console only
MEMBER = "member"  # a membership change of a private room or DM (a lasting room event)
REACTIONS = "reactions"  # a message's reactions changed (a lasting room event)

# Kinds of room.
ROOM_PUBLIC = "public"  # anyone reads, logged-in users post
ROOM_PRIVATE = "private"  # members only; members invite, the owner (or staff) removes
ROOM_DM = "dm"  # a direct message between a fixed set of people, at most MAX_DM_PEOPLE

# Actions of a ``member`` frame.
MEMBER_INVITED = "invited"
MEMBER_JOINED = "joined"
MEMBER_DECLINED = "declined"
MEMBER_LEFT = "left"
MEMBER_REMOVED = "removed"

# Kinds of message.
KIND_MESSAGE = "message"
KIND_ANNOUNCEMENT = "announcement"

# --- Error codes (the "code" of an error frame) ------------------------------------------------
# The frame intake's codes, shared by every socket (defined in realtime.generic.frames):
MALFORMED = frames.MALFORMED  # binary, not JSON, too deep, a number over 64 bits, not an object
UNKNOWN_TYPE = frames.UNKNOWN_TYPE
TOO_LARGE = frames.TOO_LARGE  # over MAX_FRAME_BYTES; the socket is closed with CLOSE_TOO_LARGE
INVALID = frames.INVALID  # a field is missing or has the wrong type
RATE_LIMITED = frames.RATE_LIMITED  # the socket's budget, or chat's per-user message limit
SERVER_ERROR = frames.SERVER_ERROR  # the server failed (database, layer); retrying may work
# Chat's own:
TOO_LONG = "too_long"
EMPTY = "empty"
LOGIN_REQUIRED = "login_required"
MUTED = "muted"
NOT_FOUND = "not_found"
NOT_ALLOWED = "not_allowed"  # not yours to change, or staff only
NOT_MEMBER = "not_member"  # a private room or DM the user has not joined (socket: close 4403)

# --- Close codes -------------------------------------------------------------------------------
CLOSE_TOO_LARGE = frames.CLOSE_TOO_LARGE  # 4009
CLOSE_LOGIN_REQUIRED = frames.CLOSE_LOGIN_REQUIRED  # 4401: not logged in, or the login ended
CLOSE_FORBIDDEN = frames.CLOSE_FORBIDDEN  # 4403: the console for non-staff; a room for non-members
CLOSE_NO_SUCH_ROOM = 4404
# Sent by a web process that is shutting down (`manage.py serve` drains): the client reconnects at
# once, to another process, and sends again what it has not seen confirmed; frames still waiting
# in the closed socket's queue are therefore dropped, not handled (they would arrive twice).
CLOSE_SERVICE_RESTART = frames.CLOSE_SERVICE_RESTART  # 1012: the server drains; reconnect now

# --- Limits ------------------------------------------------------------------------------------
MAX_TEXT_LENGTH = 4000  # characters of one message
MAX_FRAME_BYTES = 64 * 1024  # one client frame, UTF-8 encoded
HISTORY_PAGE_SIZE = 50
# ?after= replays at most this many messages (one frame), and &seq= at most this many events;
# a client further behind gets the latest page instead, as on a first visit.
REPLAY_MAX_MESSAGES = 500
REPLAY_MAX_EVENTS = 1000
EDIT_WINDOW = timedelta(minutes=10)
MAX_MUTE_MINUTES = 60 * 24 * 30
TYPING_INTERVAL_SECONDS = 2.0  # at most one typing broadcast per connection per interval
MAX_CLIENT_ID_LENGTH = 64
QUOTE_LENGTH = 200  # characters of the original a reply's quote carries
# The reactions people may add, in the order they are shown.
REACTION_EMOJI = ("👍", "❤️", "😂", "🎉", "😮", "👀")
MAX_DM_PEOPLE = 8  # everyone in a direct message, its creator included
MAX_ROOM_TITLE_LENGTH = 100
MAX_ATTACHMENTS_PER_MESSAGE = 10
MAX_ATTACHMENT_NAME_LENGTH = 200  # characters of a file's name as shown (longer ones are cut)
# Attachments of these types are shown as images, with a thumbnail (the others are downloads).
IMAGE_CONTENT_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
THUMBNAIL_MAX_SIDE = 480  # pixels: a thumbnail fits in a square this big

# --- Attention (chat.attention, chat.mail) ------------------------------------------------------
# What of a room notifies one reader: every message by others, only mentions of them (and every
# message of a DM), or nothing (no desktop notification, no mention in the bell, no e-mail).
NOTIFY_ALL = "all"
NOTIFY_MENTIONS = "mentions"
NOTIFY_NOTHING = "nothing"
NOTIFY_LEVELS = (NOTIFY_ALL, NOTIFY_MENTIONS, NOTIFY_NOTHING)
DEFAULT_NOTIFY_LEVEL = NOTIFY_MENTIONS
# Minutes a mention or DM may stay unread before it is e-mailed (0: never), the user's choice.
MAIL_DELAY_MINUTES = (0, 5, 15, 60, 24 * 60)
DEFAULT_MAIL_DELAY_MINUTES = 15

# --- Rooms -------------------------------------------------------------------------------------
ROOM_SLUG_PATTERN = r"[A-Za-z0-9_-]{1,50}"
ROOM_SLUG_RE = re.compile(rf"^{ROOM_SLUG_PATTERN}$")
RESERVED_ROOM_SLUGS = frozenset({"admin"})

# --- Channel-layer groups and event types (the interface between processes) -------------------
ADMIN_GROUP = "chat.admin"
# Consoles whose user may read private rooms (chat.view_private_messages) also join this group;
# the events of private rooms and DMs go here instead of ADMIN_GROUP.
ADMIN_PRIVATE_GROUP = "chat.admin.private"
# A lasting room event: {"type": EVENT_ROOM, "room": slug, "seq": n, "text": <encoded frame>}.
EVENT_ROOM = "chat.room_event"
# A room event may carry "private": true (sent to ADMIN_PRIVATE_GROUP, not ADMIN_GROUP) and
# "revoke": user id (that user's sockets on the room close with 4403 once they forwarded it).
# A passing event (typing, presence): {"type": EVENT_TRANSIENT, "text": <encoded frame>}.
EVENT_TRANSIENT = "chat.transient"
# To an account's group (realtime.accounts.account_group): the user lost access to a room, and
# that account's sockets on it close with 4403: {"type": EVENT_ACCESS_LOST, "room": slug}.
EVENT_ACCESS_LOST = "chat.access_lost"


def room_group(slug: str) -> str:
    """The channel-layer group of one room's sockets."""
    return f"chat.room.{slug}"


encode = frames.encode_frame  # a server frame as the JSON text sent on the wire
