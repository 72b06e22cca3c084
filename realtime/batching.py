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
import contextvars
import functools
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from realtime.db import database_sync_to_async

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


class DatabaseCalls:
    """Calls to the database thread made at the same moment, run in one hop: ``await
    calls.call(func, *args)`` answers as ``await database_sync_to_async(func)(*args)`` would,
    each call in the context it was made in (its log lines keep their connection id) and with its
    own answer or exception, while the calls made meanwhile share the hop (up to `max_size`). A
    hop costs the event loop about 50 µs (a future, a thread wake-up, the loop's wake-up): in a
    reconnect storm, the users and the opening frames of 2,000 sockets took 4,000 of them
    (bench/README.md, "Round 3"). One call alone is served at once, as before. Only for calls
    that do not depend on each other's success: each runs on its own, outside any transaction."""

    def __init__(self, max_size: int = 100) -> None:
        self._batcher: Batcher[tuple[contextvars.Context, Callable[[], Any]], Any] = Batcher(
            self._serve, max_size=max_size
        )

    async def call(self, func: Callable[..., Any], *args: Any) -> Any:
        return await self._batcher.submit(
            (contextvars.copy_context(), functools.partial(func, *args))
        )

    async def _serve(self, calls: list[tuple[contextvars.Context, Callable[[], Any]]]) -> list[Any]:
        return await database_sync_to_async(self.run_all)(calls)

    def run_all(self, calls: list[tuple[contextvars.Context, Callable[[], Any]]]) -> list[Any]:
        """Run `calls` in the database thread, each in its context; answers or exceptions."""
        answers: list[Any] = []
        for context, call in calls:
            try:
                answers.append(context.run(call))
            except Exception as error:
                answers.append(error)
        return answers


__all__ = ["Batcher", "DatabaseCalls"]
