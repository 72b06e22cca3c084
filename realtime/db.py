"""Database access from async code, with Django's per-request connection hygiene.

Django closes database connections that are broken or older than CONN_MAX_AGE at the start and end
of every request (the request_started/request_finished signals). A long-lived WebSocket is not a
request, so code that reaches the ORM from a consumer must do the same around each call, or a
connection that the database dropped hours ago is reused and fails. `database_sync_to_async` does
exactly that, on top of asgiref's `SyncToAsync`:

    @database_sync_to_async
    def save_message(room: Room, text: str) -> Message:
        return room.messages.create(text=text)

    message = await save_message(room, "hello")
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import SyncToAsync, sync_to_async
from django.db import close_old_connections


class DatabaseSyncToAsync(SyncToAsync[Any, Any]):
    """`SyncToAsync` that calls `django.db.close_old_connections()` before and after the wrapped
    function, in the thread that runs it (the thread whose connections the function uses)."""

    def thread_handler(self, loop, *args, **kwargs):
        close_old_connections()
        try:
            return super().thread_handler(loop, *args, **kwargs)
        finally:
            close_old_connections()


database_sync_to_async = DatabaseSyncToAsync
"""Decorator or wrapper: `database_sync_to_async(func)` returns an awaitable version of `func`."""


async def aclose_old_connections() -> None:
    """Close stale database connections of the sync thread, from async code."""
    await sync_to_async(close_old_connections)()


__all__ = ["DatabaseSyncToAsync", "aclose_old_connections", "database_sync_to_async"]
