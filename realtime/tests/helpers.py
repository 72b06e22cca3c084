"""What the core's tests share: receiving from a channel layer with a deadline, proving nothing
arrives, and waiting on a condition with a deadline instead of sleeping a fixed time.

    message = await receive(layer, channel)            # fails after `timeout` seconds
    assert await nothing_arrives(layer, channel)       # fails if a message comes within `wait`
    await wait_until(lambda: len(done) == 3)           # TimeoutError after `timeout` seconds
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import pytest


async def receive(layer: Any, channel: str, timeout: float = 5) -> dict[str, Any]:
    """The next message on `channel`; TimeoutError after `timeout` seconds."""
    return await asyncio.wait_for(layer.receive(channel), timeout)


async def nothing_arrives(layer: Any, channel: str, wait: float = 0.3) -> bool:
    """True if nothing arrives on `channel` within `wait` seconds; fails the test otherwise."""
    with contextlib.suppress(TimeoutError):
        message = await asyncio.wait_for(layer.receive(channel), wait)
        pytest.fail(f"expected no message on {channel!r}, got {message!r}")
    return True


async def wait_until(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    """Return once `condition()` is true; TimeoutError after `timeout` seconds."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


def batch_sizes(monkeypatch: Any, owner: Any, name: str) -> list[int]:
    """Wrap `owner.name`, a function served a batch (a list) at a time, so that the size of each
    batch it serves is recorded in the list returned."""
    sizes: list[int] = []
    original = getattr(owner, name)

    def recording(batch: list[Any]) -> Any:
        sizes.append(len(batch))
        return original(batch)

    monkeypatch.setattr(owner, name, recording)
    return sizes
