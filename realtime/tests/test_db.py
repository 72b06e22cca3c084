"""database_sync_to_async, as a specification: ORM access from async code, with Django's
per-request connection hygiene around each call."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from django.contrib.auth import get_user_model

import realtime.db
from realtime.db import database_sync_to_async


@pytest.fixture
def hygiene_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Records each close_old_connections() call made by realtime.db (and still makes it), with
    the thread it ran in."""
    calls: list[tuple[str, int]] = []
    real = realtime.db.close_old_connections

    def recording_close_old_connections() -> None:
        calls.append(("close_old_connections", threading.get_ident()))
        real()

    monkeypatch.setattr(realtime.db, "close_old_connections", recording_close_old_connections)
    return calls


def test_database_sync_to_async_is_a_sync_to_async() -> None:
    assert issubclass(database_sync_to_async, SyncToAsync)


@pytest.mark.django_db(transaction=True)
async def test_wrapped_function_can_use_the_orm() -> None:
    @database_sync_to_async
    def create_and_count(name: str) -> int:
        get_user_model().objects.create_user(name)
        return get_user_model().objects.count()

    assert await create_and_count("ann") == 1
    assert await create_and_count("bob") == 2


@pytest.mark.django_db
async def test_wrapped_function_runs_outside_the_event_loop_thread() -> None:
    thread = await database_sync_to_async(threading.get_ident)()
    assert thread != threading.get_ident()


@pytest.mark.django_db
async def test_stale_connections_are_closed_before_and_after_the_call_in_its_thread(
    hygiene_calls: list[tuple[str, int]],
) -> None:
    seen: dict[str, Any] = {}

    def work() -> str:
        seen["calls_before"] = len(hygiene_calls)
        seen["thread"] = threading.get_ident()
        return "done"

    assert await database_sync_to_async(work)() == "done"
    assert seen["calls_before"] == 1
    assert hygiene_calls == [
        ("close_old_connections", seen["thread"]),
        ("close_old_connections", seen["thread"]),
    ]


@pytest.mark.django_db
async def test_connections_are_closed_after_a_failing_call(
    hygiene_calls: list[tuple[str, int]],
) -> None:
    def fail() -> None:
        raise LookupError("no such thing")

    with pytest.raises(LookupError, match="no such thing"):
        await database_sync_to_async(fail)()
    assert len(hygiene_calls) == 2


@pytest.mark.django_db
async def test_decorates_methods() -> None:
    class Repository:
        prefix = "user-"

        @database_sync_to_async
        def name_for(self, number: int) -> str:
            return f"{self.prefix}{number}"

    assert await Repository().name_for(7) == "user-7"
