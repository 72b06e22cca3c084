"""The notifications wire protocol, defined once: frame types, error codes, close codes, limits,
group and channel names. Code and tests import these names instead of repeating literals.

WebSocket `ws/notifications/` (JSON text frames)::

    server -> {"type": "unread", "count": 3, "user": "ann"}   (the first frame says who the socket
                                                             is; later ones carry the count only)
    server -> {"type": "notification", "id": 42, "verb": "mention", "text": "ann: @bob hi",
               "url": "/chat/lobby/#m-17", "actor": "ann", "created": "2026-11-23T12:00:00+00:00",
               "read": false}
    client -> {"type": "read", "ids": [42, 41]}
    client -> {"type": "read_all"}
    server -> {"type": "error", "code": "invalid", "detail": "..."}

Error frames and their shared codes (malformed, unknown_type, too_large + close 4009,
rate_limited, invalid, server_error) are the core frame intake's, `realtime.generic.frames`.

Channel-layer events sent to a user's group (`user_group(user_id)`), one per change::

    {"type": "notification.created", "notification": {...as the frame...}, "unread": 4}
    {"type": "notification.unread", "count": 0}

Worker channel `FANOUT_CHANNEL` (see services.notify_all)::

    {"type": "notifications.fanout", "fanout_id": "<uuid hex>", "verb": ..., "text": ...,
     "url": ..., "actor_id": 7 | None, "after_user_id": 0}
"""

import re
from typing import Any, Final

# Frame types (the "type" key of every JSON frame).
UNREAD: Final = "unread"
NOTIFICATION: Final = "notification"
READ: Final = "read"
READ_ALL: Final = "read_all"
ERROR: Final = "error"

# Error codes of the JSON error bodies (HTTP); WebSocket error frames use the intake's codes.
ERROR_MALFORMED: Final = "malformed"  # the body is not a JSON object, or fields are wrong
ERROR_BAD_PARAMETER: Final = "bad_parameter"
ERROR_NOT_AUTHENTICATED: Final = "not_authenticated"
ERROR_METHOD_NOT_ALLOWED: Final = "method_not_allowed"
ERROR_CSRF_FAILED: Final = "csrf_failed"

# WebSocket close codes.
CLOSE_NOT_AUTHENTICATED: Final = 4401

# Limits.
MAX_FRAME_BYTES: Final = 64 * 1024
MAX_IDS_PER_READ: Final = 1000
MAX_ID: Final = 2**63 - 1  # ids are 64-bit; larger cursors are bad parameters, not server errors
POLL_DEFAULT_TIMEOUT: Final = 25.0
POLL_MAX_TIMEOUT: Final = 60.0
POLL_MAX_NOTIFICATIONS: Final = 100
API_PAGE_SIZE: Final = 50
API_MAX_PAGE_SIZE: Final = 100
FANOUT_BATCH_SIZE: Final = 500

# Channel-layer event types (group messages to a user's consumers) and the worker channel.
EVENT_CREATED: Final = "notification.created"
EVENT_UNREAD: Final = "notification.unread"
EVENT_FANOUT: Final = "notifications.fanout"
FANOUT_CHANNEL: Final = "notifications-fanout"


def user_group(user_id: int) -> str:
    """The channel-layer group every live connection (socket or poll) of one user joins."""
    return f"notifications.user.{user_id}"


_ID_RE = re.compile(r"[0-9]{1,19}")


def parse_id(text: str) -> int | None:
    """A notification id (or cursor) from a query string: ASCII digits within 64 bits, else None."""
    if not _ID_RE.fullmatch(text) or int(text) > MAX_ID:
        return None
    return int(text)


def parse_ids(value: Any) -> list[int]:
    """The "ids" of a read request: a list of at most MAX_IDS_PER_READ integer ids. Raises
    ValueError saying what was expected otherwise."""
    if (
        not isinstance(value, list)
        or len(value) > MAX_IDS_PER_READ
        or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= MAX_ID for i in value
        )
    ):
        raise ValueError(f"ids must be a list of at most {MAX_IDS_PER_READ} notification ids")
    return value
