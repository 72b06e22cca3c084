"""The notifications wire protocol, defined once: frame types, error codes, close codes, limits,
group and channel names. Code and tests import these names instead of repeating literals.

WebSocket `ws/notifications/` (JSON text frames)::

    server -> {"type": "unread", "count": 3}
    server -> {"type": "notification", "id": 42, "verb": "mention", "text": "ann: @bob hi",
               "url": "/chat/lobby/#m-17", "actor": "ann", "created": "2026-11-23T12:00:00+00:00",
               "read": false}
    client -> {"type": "read", "ids": [42, 41]}
    client -> {"type": "read_all"}
    server -> {"type": "error", "code": "malformed", "message": "..."}

Channel-layer events sent to a user's group (`user_group(user_id)`), one per change::

    {"type": "notification.created", "notification": {...as the frame...}, "unread": 4}
    {"type": "notification.unread", "count": 0}

Worker channel `FANOUT_CHANNEL` (see services.notify_all)::

    {"type": "notifications.fanout", "fanout_id": "<uuid hex>", "verb": ..., "text": ...,
     "url": ..., "actor_id": 7 | None, "after_user_id": 0}
"""

from typing import Final

# Frame types (the "type" key of every JSON frame).
UNREAD: Final = "unread"
NOTIFICATION: Final = "notification"
READ: Final = "read"
READ_ALL: Final = "read_all"
ERROR: Final = "error"

# Error codes carried by error frames (WebSocket) and JSON error bodies (HTTP).
ERROR_MALFORMED: Final = "malformed"  # not JSON, not an object, or missing/wrong fields
ERROR_UNKNOWN_TYPE: Final = "unknown_type"
ERROR_FRAME_TOO_LARGE: Final = "frame_too_large"
ERROR_BAD_PARAMETER: Final = "bad_parameter"
ERROR_NOT_AUTHENTICATED: Final = "not_authenticated"

# WebSocket close codes.
CLOSE_NOT_AUTHENTICATED: Final = 4401
CLOSE_FRAME_TOO_LARGE: Final = 4009

# Limits.
MAX_FRAME_BYTES: Final = 64 * 1024
MAX_IDS_PER_READ: Final = 1000
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
