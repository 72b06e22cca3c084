"""The wire protocols of the news app, defined once: the "aprs" ASGI scope and the ws/news/ frames.

The "aprs" scope (from `manage.py aprs_gateway`, or the embedded replay of `manage.py serve`):

    scope   {"type": "aprs", "server": "rotate.aprs2.net:14580", "callsign": "N0CALL",
             "filter": "t/sm"}
    events  {"type": "aprs.connect"}
            {"type": "aprs.packet", "raw": "K1ABC>APRS,TCPIP*,qAC,T2X:>On the air",
             "received": 1795435200.65}
            {"type": "aprs.disconnect"}

ws/news/ frames (JSON text), server to client:

    {"type": "news.recent", "items": [ITEM, ...]}      on connect, and in answer to news.recent
    {"type": "news.item", "item": ITEM}                  a new item, live
    {"type": "news.seen", "id": 7, "seen_count": 3, "last_seen": "2026-11-23T12:00:00+00:00"}
    {"type": "error", "code": "bad_parameter", "detail": "..."}   (shape and shared codes:
                                                                 realtime.generic.frames)

client to server:

    {"type": "news.recent", "kind": "bulletin", "prefix": "W1", "limit": 50}   (all keys optional)

ITEM is {"id", "kind", "source", "addressee", "group", "text", "details", "raw", "received",
"last_seen", "seen_count"} with ISO-8601 UTC times.
"""

from __future__ import annotations

# The "aprs" scope type and its events.
SCOPE_TYPE = "aprs"
EVENT_CONNECT = "aprs.connect"
EVENT_PACKET = "aprs.packet"
EVENT_DISCONNECT = "aprs.disconnect"

# The channel-layer group every ws/news/ socket joins, and the group message types sent to it.
# Group messages carry the frame already encoded ("text"), so a broadcast is encoded once.
NEWS_GROUP = "aprs-news"
GROUP_MESSAGE_FRAME = "news.frame"

# Frame types.
FRAME_RECENT = "news.recent"
FRAME_ITEM = "news.item"
FRAME_SEEN = "news.seen"
FRAME_ERROR = "error"

# The news socket's own error code; the shared ones (malformed, unknown_type, too_large with close
# 4009, rate_limited, server_error) are the core frame intake's (realtime.generic.frames).
ERROR_BAD_PARAMETER = "bad_parameter"

# Limits.
MAX_CLIENT_FRAME_BYTES = 4096
RECENT_DEFAULT = 50
RECENT_MAX = 200
