"""How the ``Channel`` and ``Group`` handles carry out an operation: from sync or async code, now
or when the message consumer that asked for it returns.

Content in the Channels 1.x reply shape (no ``"type"``) becomes the ASGI events it meant, in this
order: accept, frame, close::

    {"accept": True}                     -> {"type": "websocket.accept"}
    {"accept": False}                    -> {"type": "websocket.close", "code": 1000}  (refuses)
    {"text": "hi"}                       -> {"type": "websocket.send", "text": "hi"}
    {"bytes": b"\\x00"}                  -> {"type": "websocket.send", "bytes": b"\\x00"}
    {"close": True}                      -> {"type": "websocket.close", "code": 1000}
    {"close": 4000}                      -> {"type": "websocket.close", "code": 4000}
    {"text": "bye", "close": True}       -> websocket.send, then websocket.close

Content with a ``"type"`` is sent as it is. Anything else raises TypeError in the caller's frame,
naming the content and the keys that would be understood.

Sync or async, one method: ``send()``, ``add()`` and ``discard()`` return a
:class:`LayerOperation`.

- Called where no event loop runs in the thread (a Django view, a management command, a sync
  consumer's thread, any other thread), the operation is done before the call returns, through
  asgiref's ``async_to_sync``; its errors are raised there.
- Called where an event loop runs, the operation starts at once, as a task, and the returned
  object is awaited for its outcome: ``await Group("g").send(...)``. One that nobody awaits still
  runs (it never silently does nothing, as an un-awaited coroutine would), and its failure is
  logged at ERROR with the operation's name.

``immediately``: inside a message consumer (:mod:`realtime.message`), ``send(...,
immediately=False)``, the default, holds the message until the consumer returns, then sends it,
in call order; a consumer that raises ConsumeLater sends none of them (the message will be handled
again). ``immediately=True`` sends before the call returns. Outside a message consumer every send
is immediate.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Generator, Mapping
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync

logger = logging.getLogger(__name__)

Operation = Callable[[], Awaitable[None]]

#: The messages a running message consumer holds back until it returns (None outside one).
_held_back: ContextVar[list[tuple[str, Operation]] | None] = ContextVar(
    "realtime_held_back_sends", default=None
)

LEGACY_REPLY_KEYS = ("accept", "text", "bytes", "close")
NORMAL_CLOSE = 1000


def content_events(content: Any) -> list[dict[str, Any]]:
    """The layer messages ``content`` stands for (see the module docstring)."""
    if not isinstance(content, Mapping):
        raise TypeError(f"A message must be a dict, not {type(content).__name__}: {content!r:.200}")
    if "type" in content:
        return [dict(content)]
    unknown = sorted(str(key) for key in content if key not in LEGACY_REPLY_KEYS)
    if unknown or not content:
        raise TypeError(
            f"A message needs a 'type' key (such as {{'type': 'chat.message', ...}}), or only "
            f"the Channels 1.x reply keys {list(LEGACY_REPLY_KEYS)}; got {dict(content)!r:.200}"
        )
    events: list[dict[str, Any]] = []
    accept = content.get("accept")
    if accept is True:
        events.append({"type": "websocket.accept"})
    elif accept is False:
        events.append({"type": "websocket.close", "code": NORMAL_CLOSE})
        return events
    elif accept is not None:
        raise TypeError(f"'accept' must be True or False, got {accept!r}")
    text, data = content.get("text"), content.get("bytes")
    if text is not None and data is not None:
        raise TypeError(f"A frame is text or bytes, not both: {dict(content)!r:.200}")
    if text is not None:
        if not isinstance(text, str):
            raise TypeError(f"'text' must be a str, got {type(text).__name__}: {text!r:.100}")
        events.append({"type": "websocket.send", "text": text})
    if data is not None:
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"'bytes' must be bytes, got {type(data).__name__}: {data!r:.100}")
        events.append({"type": "websocket.send", "bytes": bytes(data)})
    close = content.get("close")
    if close is True:
        events.append({"type": "websocket.close", "code": NORMAL_CLOSE})
    elif isinstance(close, int) and not isinstance(close, bool):
        events.append({"type": "websocket.close", "code": close})
    elif close not in (None, False):
        raise TypeError(f"'close' must be True, False or a close code, got {close!r}")
    return events


class LayerOperation:
    """What a handle's ``send``/``add``/``discard`` returns: await it in async code for the
    outcome; in sync code the operation is already done (or held back) when you get it."""

    __slots__ = ("_awaited", "_task", "description")

    def __init__(self, description: str, task: asyncio.Task[None] | None = None) -> None:
        self.description = description
        self._task = task
        self._awaited = False
        if task is not None:
            task.add_done_callback(self._report_unawaited_failure)

    @property
    def done(self) -> bool:
        """True once the operation has finished (or was held back until the consumer returns)."""
        return self._task is None or self._task.done()

    def __await__(self) -> Generator[Any, None, None]:
        self._awaited = True
        if self._task is None:
            return None
        yield from self._task.__await__()
        return None

    def _report_unawaited_failure(self, task: asyncio.Task[None]) -> None:
        if self._awaited or task.cancelled() or task.exception() is None:
            return
        logger.error("%s failed and nobody awaited it", self.description, exc_info=task.exception())

    def __repr__(self) -> str:
        state = "done" if self.done else "running"
        return f"<LayerOperation {self.description} {state}>"


def perform(description: str, operation: Operation, immediately: bool = True) -> LayerOperation:
    """Carry out ``operation`` as the module docstring says; ``description`` names it in logs."""
    held_back = _held_back.get()
    if not immediately and held_back is not None:
        held_back.append((description, operation))
        return LayerOperation(description)
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        async_to_sync(operation)()
        return LayerOperation(description)
    return LayerOperation(description, loop.create_task(_run(operation)))


async def _run(operation: Operation) -> None:
    await operation()


class HeldBackSends:
    """The sends a message consumer holds back: ``with HeldBackSends() as held: ...`` then
    ``await held.flush()`` once the consumer has returned (or ``held.discard()``)."""

    def __init__(self) -> None:
        self.operations: list[tuple[str, Operation]] = []
        self._token: Any = None

    def __enter__(self) -> HeldBackSends:
        self._token = _held_back.set(self.operations)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _held_back.reset(self._token)

    async def flush(self) -> None:
        """Send what was held back, in call order; the first failure is raised after the rest
        were tried, so one full channel does not lose the other messages."""
        operations, self.operations[:] = list(self.operations), []
        first_error: BaseException | None = None
        for description, operation in operations:
            try:
                await operation()
            except Exception as error:
                logger.error("%s failed", description, exc_info=error)
                first_error = first_error or error
        if first_error is not None:
            raise first_error

    def discard(self) -> None:
        if self.operations:
            logger.info(
                "Dropped %d held-back send(s) of a consumer that will run again: %s",
                len(self.operations),
                ", ".join(description for description, _ in self.operations),
            )
        self.operations.clear()


__all__ = ["HeldBackSends", "LayerOperation", "content_events", "perform"]
