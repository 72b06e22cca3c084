"""JSON frame sockets: the one intake every application socket uses before its own logic runs.

A client sends JSON objects with a string "type"; the socket answers with frames of its own and,
when something is wrong, with one error frame shape, the same for every app::

    client -> {"type": "message", "text": "hi", "client_id": "c-1"}
    server -> {"type": "error", "code": "malformed", "detail": "The frame is not valid JSON."}

`JsonFrameConsumer` owns, in this order, what happens to a frame before a handler sees it:

1. **State.** Frames are taken only while the socket is open: the core's websocket consumers drop
   every frame that arrives before accept() or after the consumer sent a close (a client that
   ignores a 4401/4403 close and keeps sending reaches nothing). Frames already queued when the
   consumer closes are discarded too, and so are those queued when a draining server closes the
   socket with 1012 (the client sends again what it has not seen answered); frames queued when
   the *client* leaves are still handled (what a client sent before it went away is not lost),
   without anything being sent back.
2. **Size.** A frame over `FrameLimits.max_bytes` (UTF-8 encoded) gets ``too_large`` and close
   4009; it is never decoded.
3. **Budget.** Each socket has a request budget (a token bucket: `rate` frames a second, bursts of
   `burst`) and a bounded queue of frames waiting for their handler (`queue`). A frame beyond
   either is refused with ``rate_limited`` (one error frame per run of refusals, so a flood cannot
   make the server write a flood) and is not handled.
4. **Decoding**, in order, one frame at a time in a task of the socket's own (so the consumer goes
   on forwarding layer events while a frame's handler waits on the database): binary frames, text
   that is not JSON, JSON nested deeper than `max_depth`, integers outside 64 bits and the
   non-standard NaN/Infinity are ``malformed``; a JSON value that is not an object with a string
   "type" is ``malformed``; a type the app does not declare is ``unknown_type``.
5. **Dispatch** to ``handle_<type>(frame)`` (dots in the type become underscores). A handler
   raises `FrameError(code, detail)` for anything the client should be told (the app's own codes
   live in its `protocol.py`); any other exception is logged and answered with ``server_error``,
   and the socket stays open.

Sockets also follow their account (`realtime.accounts`): an authenticated socket joins its
account's group; when the account logs out, changes its password, is deactivated, deleted or loses
staff rights, the socket re-checks its login as Django checks a request and, if it no longer
holds, `login_lost()` closes it with 4401 (a `staff_only` socket: 4403, also when only the staff
flag went).

Close codes used here: 4009 frame too large, 4401 login required, 4403 forbidden.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar

from django.conf import settings

from realtime.accounts import (
    PASSWORD_CHANGED,
    RECHECK_GRACE_SECONDS,
    account_group,
    session_fingerprint,
    session_user,
)
from realtime.db import database_sync_to_async
from realtime.generic.websocket import AsyncWebsocketConsumer, WebSocketState
from realtime.types import Message

logger = logging.getLogger(__name__)

# --- The error frame ---------------------------------------------------------------------------
ERROR = "error"

MALFORMED = "malformed"  # binary, not JSON, too deep, a number out of range, not an object
UNKNOWN_TYPE = "unknown_type"  # the "type" is not one this socket takes
TOO_LARGE = "too_large"  # over max_bytes; the socket is closed with CLOSE_TOO_LARGE
RATE_LIMITED = "rate_limited"  # over the socket's request budget or queue; the frame is dropped
INVALID = "invalid"  # a field is missing or has the wrong type or value
SERVER_ERROR = "server_error"  # the server failed (database, layer); retrying may work

CLOSE_SERVICE_RESTART = 1012  # the server is draining (manage.py serve on SIGTERM)
CLOSE_TOO_LARGE = 4009
CLOSE_LOGIN_REQUIRED = 4401
CLOSE_FORBIDDEN = 4403

# Integers a frame may carry: 64-bit signed, what every database id column holds.
MAX_INT = 2**63 - 1
_MAX_INT_DIGITS = len(str(MAX_INT))


class FrameError(Exception):
    """A frame the server refuses: becomes ``{"type": "error", "code": code, "detail": detail}``
    and the socket stays open."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    def as_frame(self) -> dict[str, Any]:
        return error_frame(self.code, self.detail)


def error_frame(code: str, detail: str) -> dict[str, Any]:
    """The one error frame shape of every socket."""
    return {"type": ERROR, "code": code, "detail": detail}


@dataclass(frozen=True)
class FrameLimits:
    """What one socket may send: frame size and nesting, and its request budget.

    max_bytes  largest frame, UTF-8 encoded (bigger: ``too_large`` and close 4009)
    max_depth  deepest nesting of arrays and objects (the frame itself is depth 1)
    queue      frames waiting for their handler at once
    rate       frames a second the budget refills with; `burst` is how many it holds (None:
               ``settings.REALTIME_FRAMES_PER_SECOND``, 20 unless set, and twice that)
    """

    max_bytes: int = 64 * 1024
    max_depth: int = 8
    queue: int = 32
    rate: float | None = None
    burst: int | None = None

    def budget(self) -> RequestBudget:
        """A new request budget of these limits."""
        rate = self.rate
        if rate is None:
            rate = float(getattr(settings, "REALTIME_FRAMES_PER_SECOND", 20))
        return RequestBudget(rate, self.burst if self.burst is not None else int(2 * rate))


class RequestBudget:
    """A token bucket: `take()` spends one token if there is one; tokens come back at `rate` a
    second, up to `burst`."""

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _bounded_int(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) > _MAX_INT_DIGITS or abs(int(text)) > MAX_INT:
        raise FrameError(MALFORMED, f"Numbers in a frame fit in 64 bits; got {text[:30]}.")
    return int(text)


def _no_constant(name: str) -> Any:
    raise FrameError(MALFORMED, f"{name} is not JSON.")


def _depth_within(value: Any, max_depth: int) -> bool:
    """Whether `value` nests arrays and objects at most `max_depth` deep (iteratively, so a
    hostile depth cannot exhaust the stack)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def decode_frame(text_data: str, max_depth: int) -> dict[str, Any]:
    """A client frame decoded: a dict with a string "type", or FrameError(malformed)."""
    try:
        frame = json.loads(text_data, parse_int=_bounded_int, parse_constant=_no_constant)
    except RecursionError:
        raise FrameError(
            MALFORMED, f"A frame nests at most {max_depth} levels of arrays and objects."
        ) from None
    except ValueError:
        raise FrameError(MALFORMED, "The frame is not valid JSON.") from None
    if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
        raise FrameError(MALFORMED, 'A frame is a JSON object with a string "type".')
    if not _depth_within(frame, max_depth):
        raise FrameError(
            MALFORMED, f"A frame nests at most {max_depth} levels of arrays and objects."
        )
    return frame


def handler_name(frame_type: str) -> str:
    """The method that handles a frame type: "news.recent" -> "handle_news_recent"."""
    return "handle_" + frame_type.replace(".", "_")


class JsonFrameConsumer(AsyncWebsocketConsumer):
    """Base of every application socket that speaks JSON frames (see the module docstring).

    Subclasses declare `frame_types` (from their app's protocol.py), write one
    ``async def handle_<type>(self, frame)`` per type, and reply with `send_frame()`. They may
    tune `limits`, and override `on_account_changed()`.
    """

    frame_types: ClassVar[frozenset[str]] = frozenset()
    limits: ClassVar[FrameLimits] = FrameLimits()
    # A socket only staff may hold (a console): losing staff rights closes it with 4403.
    staff_only: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        missing = [t for t in sorted(cls.frame_types) if not hasattr(cls, handler_name(t))]
        if missing:
            raise TypeError(
                f"{cls.__name__} declares frame types {missing} without handlers; define "
                + ", ".join(f"async def {handler_name(t)}(self, frame)" for t in missing)
            )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.budget = self.limits.budget()
        self.refusing = False  # inside a run of refused frames: one error frame per run
        self.closed_by_server = False
        self.frames: deque[str | None] = deque()
        self.frame_ready: asyncio.Event | None = None
        self.frame_task: asyncio.Task[None] | None = None
        self.draining = False
        self.account_group: str | None = None
        self.recheck_task: asyncio.Task[None] | None = None

    # --- connecting ---------------------------------------------------------------------------

    async def websocket_connect(self, message: Message) -> None:
        user = self.scope.get("user")
        if (
            user is not None
            and user.is_authenticated
            and hasattr(self.channel_layer, "group_add")  # a layer with groups
        ):
            # Before connect() reads anything, so no change of the account goes unheard.
            self.account_group = account_group(user.pk)
            await self.join_groups([self.account_group])
        await super().websocket_connect(message)

    # --- sending ------------------------------------------------------------------------------

    async def send_frame(self, frame: dict[str, Any]) -> None:
        """Encode a server frame (compact JSON, UTF-8 kept as is) and send it."""
        await self.send(text_data=encode_frame(frame))

    async def send_error(self, code: str, detail: str) -> None:
        await self.send_frame(error_frame(code, detail))

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        """Close the socket; frames still waiting for their handler are discarded."""
        self.closed_by_server = True
        self.frames.clear()
        await super().close(code, reason)

    # --- receiving ----------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Check a frame's size and the budget, then queue it for this socket's frame task."""
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > self.limits.max_bytes:
            await self.send_error(
                TOO_LARGE, f"A frame has at most {self.limits.max_bytes} bytes, this one {size}."
            )
            await self.close(CLOSE_TOO_LARGE)
            return
        if len(self.frames) >= self.limits.queue or not self.budget.take():
            if not self.refusing:
                self.refusing = True
                await self.send_error(
                    RATE_LIMITED,
                    f"Too many frames: at most {self.budget.rate:g} a second "
                    f"(bursts of {self.budget.burst}); this one was not handled.",
                )
            return
        self.refusing = False
        self.frames.append(text_data)  # None for a binary frame: refused, in order
        if self.frame_task is None:
            self.frame_ready = asyncio.Event()
            self.frame_task = asyncio.ensure_future(self._handle_frames())
        assert self.frame_ready is not None
        self.frame_ready.set()

    def taking_frames(self) -> bool:
        """Whether queued frames may still run: the socket is open, or the client left on its
        own (its last frames are handled; nothing is sent back)."""
        state = self.websocket_state
        return state is WebSocketState.CONNECTED or (
            state is WebSocketState.DISCONNECTED and not self.closed_by_server
        )

    async def _handle_frames(self) -> None:
        assert self.frame_ready is not None
        while True:
            if not self.frames:
                if self.draining:
                    return
                self.frame_ready.clear()
                await self.frame_ready.wait()
                continue
            text_data = self.frames.popleft()
            if not self.taking_frames():
                self.frames.clear()
                continue
            try:
                await self.handle_text(text_data)
            except Exception:
                logger.exception("%s: handling a client frame failed", type(self).__name__)

    async def handle_text(self, text_data: str | None) -> None:
        """Decode and dispatch one frame; errors become error frames."""
        frame_type = None
        try:
            if text_data is None:
                raise FrameError(MALFORMED, "Frames are JSON text, not binary.")
            frame = decode_frame(text_data, self.limits.max_depth)
            frame_type = frame["type"]
            if frame_type not in self.frame_types:
                raise FrameError(
                    UNKNOWN_TYPE,
                    f"Unknown frame type {frame_type[:50]!r}; expected one of "
                    f"{sorted(self.frame_types)}.",
                )
            await getattr(self, handler_name(frame_type))(frame)
        except FrameError as error:
            await self.send_frame(error.as_frame())
        except Exception:
            logger.exception("%s: handling a %r frame failed", type(self).__name__, frame_type)
            await self.send_error(SERVER_ERROR, "Something went wrong; please retry.")

    async def finish_frames(self) -> None:
        """Handle what the client sent before it left (unless the server closed first), then
        stop the frame task. The queue is bounded, so this ends."""
        task, self.frame_task = self.frame_task, None
        if task is None:
            return
        self.draining = True
        assert self.frame_ready is not None
        self.frame_ready.set()
        try:
            await task
        finally:
            if not task.done():
                task.cancel()

    async def websocket_disconnect(self, message: Message) -> None:
        # The client is gone: nothing can be sent, but what it sent before leaving is handled
        # before the app's disconnect() cleans up. A drain (1012) is the server's close: the
        # client sends again, to another process, what it has not seen answered.
        if message.get("code") == CLOSE_SERVICE_RESTART:
            self.closed_by_server = True
            self.frames.clear()
        self.websocket_state = WebSocketState.DISCONNECTED
        if self.recheck_task is not None:
            self.recheck_task.cancel()
        await self.finish_frames()
        await super().websocket_disconnect(message)

    # --- the account --------------------------------------------------------------------------

    async def account_changed(self, event: Message) -> None:
        """Layer event from `realtime.accounts.close_account_sockets`: re-check this socket's
        login (in a task of its own: a re-check may wait RECHECK_GRACE_SECONDS)."""
        if self.websocket_state is not WebSocketState.CONNECTED:
            return
        ended = event.get("session")
        if ended is not None:
            if ended == session_fingerprint(self._session_key()):
                await self.login_lost(str(event.get("reason", "")))
            return  # another session of the account logged out: this one still holds
        if self.recheck_task is None or self.recheck_task.done():
            self.recheck_task = asyncio.ensure_future(
                self._recheck_login(str(event.get("reason", "")))
            )

    def _session_key(self) -> str | None:
        session = self.scope.get("session")
        return getattr(session, "session_key", None) if session is not None else None

    async def _current_user(self) -> Any:
        return await database_sync_to_async(session_user)(self._session_key())

    def _login_holds(self, user: Any) -> bool:
        own = self.scope.get("user")
        return bool(user.is_authenticated and own is not None and user.pk == own.pk)

    async def _recheck_login(self, reason: str) -> None:
        try:
            user = await self._current_user()
            if not self._login_holds(user) and reason == PASSWORD_CHANGED:
                # The session that changed the password gets its new hash a moment later.
                await asyncio.sleep(RECHECK_GRACE_SECONDS)
                user = await self._current_user()
            if not self._login_holds(user) or (self.staff_only and not user.is_staff):
                await self.login_lost(reason)
        except Exception:
            logger.exception("%s: re-checking the login (%s) failed", type(self).__name__, reason)
            await self.login_lost(reason)

    async def login_lost(self, reason: str) -> None:
        """The login this socket was opened with no longer holds (or, for a `staff_only`
        socket, no longer has staff rights): close with 4401 (4403 for `staff_only`)."""
        code = CLOSE_FORBIDDEN if self.staff_only else CLOSE_LOGIN_REQUIRED
        await self.close(code, reason or "account changed")


def encode_frame(frame: dict[str, Any]) -> str:
    """A server frame as the JSON text sent on the wire (compact, UTF-8 kept as is)."""
    return json.dumps(frame, ensure_ascii=False, separators=(",", ":"))


__all__ = [
    "CLOSE_FORBIDDEN",
    "CLOSE_LOGIN_REQUIRED",
    "CLOSE_SERVICE_RESTART",
    "CLOSE_TOO_LARGE",
    "ERROR",
    "INVALID",
    "MALFORMED",
    "RATE_LIMITED",
    "SERVER_ERROR",
    "TOO_LARGE",
    "UNKNOWN_TYPE",
    "FrameError",
    "FrameLimits",
    "JsonFrameConsumer",
    "RequestBudget",
    "decode_frame",
    "encode_frame",
    "error_frame",
    "handler_name",
]
