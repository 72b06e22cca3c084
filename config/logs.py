"""Log lines for people (``DJANGO_LOG_FORMAT=plain``, the default) or for log shippers
(``DJANGO_LOG_FORMAT=json``): one JSON object per line, for example::

    {"time": "2026-12-06T02:41:07.123Z", "level": "WARNING", "logger": "django.request",
     "message": "Not Found: /nope", "request_id": "6f1c0e5d9a2b4c7e"}

``request_id`` is set on every line logged while an HTTP request is served, ``connection_id``
while a WebSocket is; both come from the ``X-Request-ID`` header when the proxy sends one (the
shipped nginx sends its ``$request_id``, so nginx's and Switchboard's lines can be joined), else
a fresh random id. Exceptions go into ``exception`` as the formatted traceback, still one line.

`ConnectionIdMiddleware` wraps the root ASGI application (config/asgi.py) and sets the id for
everything the connection runs, Django's sync views included (asgiref carries context variables
into its threads); `ContextFilter` copies it onto each log record; `JsonFormatter` writes the line.
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import re
import uuid
from typing import Any

#: ("request_id" or "connection_id", the id) of the connection being served, if any.
CONNECTION_ID: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "switchboard_connection_id", default=None
)
#: What an X-Request-ID from the proxy may look like to be used as is.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
ID_KEYS = {"http": "request_id", "websocket": "connection_id"}


class ConnectionIdMiddleware:
    """ASGI middleware giving each HTTP request and WebSocket an id for its log lines."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        key = ID_KEYS.get(scope.get("type", ""))
        if key is None:
            await self.inner(scope, receive, send)
            return
        given = next(
            (value for name, value in scope.get("headers", []) if name == b"x-request-id"), b""
        ).decode("latin-1")
        ident = given if REQUEST_ID_PATTERN.fullmatch(given) else uuid.uuid4().hex[:16]
        token = CONNECTION_ID.set((key, ident))
        try:
            await self.inner(scope, receive, send)
        finally:
            CONNECTION_ID.reset(token)


class ContextFilter(logging.Filter):
    """Puts the current connection's id on the record (``request_id`` / ``connection_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        current = CONNECTION_ID.get()
        if current is not None:
            setattr(record, current[0], current[1])
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message and the connection's id."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.datetime.fromtimestamp(record.created, datetime.UTC)
        entry: dict[str, Any] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ID_KEYS.values():
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)
