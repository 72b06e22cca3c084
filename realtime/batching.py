"""Requests that arrive together, served together: one round trip for many callers.

A reconnect storm makes two thousand sockets ask Redis for presence at the same moment, and a
hundred busy rooms make a hundred messages ask for a database commit at once. Served one by one,
each request pays its own round trip (a Redis pipeline from a pool of 16 connections, or a hop to
the single database thread and a commit); callers wait for a pooled connection past its timeout,
and the event loop spends more on the round trips than on the work. A `Batcher` collects the
requests made while one batch is in flight and serves them as the next batch, with one call of
its `serve` function::

    async def serve(keys: list[str]) -> list[bool | BaseException]: ...   # one answer per key

    limits = Batcher(serve, max_size=200)
    allowed = await limits.submit("room:7")   # the answer for this key, or its exception raised

Under no load a request is served alone, in the event loop iteration after it was made; under
load the batches grow with the load (group commit). Batches of one event loop are served one at
a time, in the order their requests were made, so two requests of one caller keep their order.
`serve` answers each request on its own: an exception in its list fails only that request; an
exception raised by `serve` itself fails every request of the batch (nothing of it was done, or
the caller cannot know what was). A caller that stops waiting (cancelled) does not withdraw its
request: what it asked for may still be done, as with a cancelled call to a thread.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

Request = TypeVar("Request")
Answer = TypeVar("Answer")


class _LoopQueue(Generic[Request, Answer]):
    """The batcher's state in one event loop: requests waiting for the next batch."""

    def __init__(self) -> None:
        self.waiting: list[tuple[Request, asyncio.Future[Answer]]] = []
        self.serving: asyncio.Task | None = None


class Batcher(Generic[Request, Answer]):
    """Serves the requests made while a batch is in flight as one batch (see module docstring)."""

    def __init__(
        self,
        serve: Callable[[list[Request]], Awaitable[list[Answer | BaseException]]],
        max_size: int = 500,
    ) -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        self.serve = serve
        self.max_size = max_size
        self._queues: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, _LoopQueue[Request, Answer]
        ] = weakref.WeakKeyDictionary()

    async def submit(self, request: Request) -> Answer:
        """Queue `request` for the next batch and return its answer (or raise its exception)."""
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _LoopQueue()
        future: asyncio.Future[Answer] = loop.create_future()
        queue.waiting.append((request, future))
        if queue.serving is None:
            queue.serving = loop.create_task(self._serve_batches(queue))
        return await future

    async def _serve_batches(self, queue: _LoopQueue[Request, Answer]) -> None:
        """Serve batches until no request waits. Started by the first request of an idle loop;
        it yields once first, so the requests made in the same iteration join the batch."""
        try:
            await asyncio.sleep(0)
            while queue.waiting:
                batch = queue.waiting[: self.max_size]
                del queue.waiting[: self.max_size]
                await self._serve_batch(batch)
        finally:
            queue.serving = None

    async def _serve_batch(self, batch: list[tuple[Request, asyncio.Future[Answer]]]) -> None:
        try:
            answers = await self.serve([request for request, _ in batch])
            if len(answers) != len(batch):
                raise RuntimeError(
                    f"{self.serve!r} answered {len(answers)} of a batch of {len(batch)} requests"
                )
        except asyncio.CancelledError:  # the loop is shutting down
            for _, future in batch:
                future.cancel()
            raise
        except Exception as error:  # the whole batch failed: each caller gets the error
            answers = [error] * len(batch)
        for (_, future), answer in zip(batch, answers, strict=True):
            if future.done():  # the caller was cancelled
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)


__all__ = ["Batcher"]
