"""Caps on what one user may hold open in one process: WebSockets and waiting long-polls.

One logged-in user opening hundreds of sockets (or long-polls that wait) would cost the process a
consumer, a channel and its group memberships each. The caps are per process: with N web
processes behind a balancer a user may hold up to N times the cap in all, which still bounds what
each process spends on one account, and needs no shared state that a crashed process could leave
behind. Anonymous connections are not counted (they are not one user; nginx limits per address).

Sockets: wrap a websocket application (inside AuthMiddlewareStack, which provides the user)::

    AuthMiddlewareStack(UserSocketLimit(URLRouter([...])))

A socket over ``settings.REALTIME_MAX_SOCKETS_PER_USER`` (0: no cap) is accepted, sent one error
frame and closed with code 4429, so that a browser sees why (a refused handshake is only "1006")::

    out  {"type": "error", "code": "too_many_connections",
          "detail": "at most 20 open sockets per user; close another tab first"}
    out  close 4429 (reason "too many connections")

Long-polls: LongPollConsumer counts its own waiting requests against
``settings.REALTIME_MAX_POLLS_PER_USER`` (realtime.generic.http) and answers the one over the cap
with 429 ``{"error": {"code": "too_many_polls", "message": ...}}``.
"""

from __future__ import annotations

import json
from collections.abc import Hashable

from django.conf import settings

from realtime.types import ASGIApp, Message, Receive, Scope, Send

#: The close code for a socket over the per-user cap (HTTP's 429, in the application range).
CLOSE_TOO_MANY_CONNECTIONS = 4429
ERROR_TOO_MANY_CONNECTIONS = "too_many_connections"
ERROR_TOO_MANY_POLLS = "too_many_polls"


class ConnectionCounter:
    """Open connections per key (a user id) in this process. Used from the event loop only."""

    def __init__(self) -> None:
        self._counts: dict[Hashable, int] = {}

    def count(self, key: Hashable) -> int:
        return self._counts.get(key, 0)

    def try_acquire(self, key: Hashable, limit: int) -> bool:
        """Count one more connection for `key` unless it already holds `limit` (0: no limit)."""
        held = self._counts.get(key, 0)
        if limit and held >= limit:
            return False
        self._counts[key] = held + 1
        return True

    def release(self, key: Hashable) -> None:
        held = self._counts.get(key, 0) - 1
        if held > 0:
            self._counts[key] = held
        else:
            self._counts.pop(key, None)


#: This process's open WebSockets and waiting long-polls, per user id.
open_sockets = ConnectionCounter()
waiting_polls = ConnectionCounter()


def authenticated_user_id(scope: Scope) -> Hashable | None:
    """The id of the scope's logged-in user, or None (anonymous, or no auth middleware)."""
    user = scope.get("user")
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    return user.pk


def max_sockets_per_user() -> int:
    return int(getattr(settings, "REALTIME_MAX_SOCKETS_PER_USER", 0))


def max_polls_per_user() -> int:
    return int(getattr(settings, "REALTIME_MAX_POLLS_PER_USER", 0))


class UserSocketLimit:
    """ASGI middleware: at most REALTIME_MAX_SOCKETS_PER_USER open WebSockets per logged-in user
    in this process; the next one is closed with 4429 (see the module docstring)."""

    def __init__(self, inner: ASGIApp, counter: ConnectionCounter | None = None) -> None:
        self.inner = inner
        self.counter = counter if counter is not None else open_sockets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or not max_sockets_per_user():
            await self.inner(scope, receive, send)
            return
        # The user is known once the first event (the handshake) has been received.
        first = await receive()
        user_id = authenticated_user_id(scope) if first["type"] == "websocket.connect" else None
        if user_id is not None and not self.counter.try_acquire(user_id, max_sockets_per_user()):
            await self._refuse(send)
            return
        replayed = False

        async def receive_from_first() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return first
            return await receive()

        try:
            await self.inner(scope, receive_from_first, send)
        finally:
            if user_id is not None:
                self.counter.release(user_id)

    @staticmethod
    async def _refuse(send: Send) -> None:
        limit = max_sockets_per_user()
        frame = {
            "type": "error",
            "code": ERROR_TOO_MANY_CONNECTIONS,
            "detail": f"at most {limit} open sockets per user; close another tab first",
        }
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": json.dumps(frame)})
        await send(
            {
                "type": "websocket.close",
                "code": CLOSE_TOO_MANY_CONNECTIONS,
                "reason": "too many connections",
            }
        )


__all__ = [
    "CLOSE_TOO_MANY_CONNECTIONS",
    "ERROR_TOO_MANY_CONNECTIONS",
    "ERROR_TOO_MANY_POLLS",
    "ConnectionCounter",
    "UserSocketLimit",
    "open_sockets",
    "waiting_polls",
]
