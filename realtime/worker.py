"""The worker: serves the root application's "channel" routes from a channel layer.

Background work is a consumer behind a `ChannelNameRouter` route. Anything may queue work for it::

    await channel_layer.send("notifications-fanout", {"type": "notify.user", "user_id": 7})

and a worker listening on "notifications-fanout" hands the message to the root application with the
scope ``{"type": "channel", "channel": "notifications-fanout"}``, the way Daphne hands it a
connection. `python manage.py runworker CHANNEL...` runs one in its own process; `manage.py serve`
runs one inside the web process when the layer is the in-memory one.

How a message's outcome is known
--------------------------------
As in Channels, each channel has one long-lived application instance whose ``receive()`` hands out
the channel's messages one at a time. Consumers dispatch one message at a time and only ask for the
next message once the handler of the previous one has returned, so:

    the instance calls receive() again   -> the message in hand is done          ("ok")
    the instance raises ConsumeLater      -> re-queue it at the back of its channel
    the instance raises anything else     -> log the traceback, dead-letter it
    the instance returns (StopConsumer)   -> the message is done

After an exception the instance is gone; a fresh one serves the channel's next message, so one
bad message never stops a worker.

ConsumeLater and dead letters
-----------------------------
A re-queued message carries its count under the reserved key ``"__retries__"`` (handlers see it).
After ``max_retries`` re-queues (setting ``REALTIME_CONSUME_LATER_MAX_RETRIES``, default 10) the
next ConsumeLater makes it a dead letter instead, as do handler errors and re-queues refused
with ChannelFull. A dead letter is never silent:

- a WARNING log line naming the channel, the message type and the reason;
- `Worker.dead_letters`, a bounded list (the newest `DEAD_LETTER_LIMIT`) of `DeadLetter`;
- when ``dead_letter_channel`` is given (``runworker --dead-letter-channel``), a message
  ``{"type": "dead.letter", "channel": ..., "reason": ..., "error": ..., "message": {...}}`` on
  that channel, so a durable layer keeps it and another worker may store it.

Stopping
--------
`Worker.stop()` (runworker calls it on SIGTERM/SIGINT) lets every channel finish the message in
hand, and stops waiting on channels with none; a message the layer returned at the very moment of
the stop is still handled, so a stop never takes a message and loses it. On layers that hand out
messages with an acknowledgement (a method ``receive_with_ack(channel)`` returning
``(message, ack)``, ``ack`` an awaitable callable), the worker acknowledges after the outcome is
settled (after the re-queue, for ConsumeLater), so a worker that dies mid-message leaves it to be
delivered again: handlers on such layers should be idempotent (at-least-once delivery).

Faults
------
A layer that fails (Redis unreachable) never ends the worker: a failed receive is logged and
retried with back-off (up to 5 s), and so is a ConsumeLater re-queue the layer refuses; if the
worker is stopped before the re-queue succeeds, the message is left unacknowledged.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from realtime.backoff import Backoff
from realtime.exceptions import ChannelFull, ConsumeLater
from realtime.types import Acknowledge, ASGIApp, Message, Scope

logger = logging.getLogger(__name__)

RETRIES_KEY = "__retries__"
DEFAULT_MAX_RETRIES = 10
DEAD_LETTER_LIMIT = 1000
DEAD_LETTER_MESSAGE_TYPE = "dead.letter"
# Waits after consecutive failures of the channel layer (a receive, a ConsumeLater re-queue):
# 0.2 s after the first, doubling, at most 5 s.
LAYER_ERROR_BACKOFF = Backoff(initial=0.1, maximum=5.0)
RECEIVE_CANCEL_GRACE = 5.0


class DeadLetterReason(enum.StrEnum):
    """Why a message was given up on."""

    RETRIES_EXHAUSTED = "retries-exhausted"
    ERROR = "error"
    CHANNEL_FULL = "channel-full"


@dataclass(frozen=True)
class DeadLetter:
    """A message the worker gave up on, with where it came from and why."""

    channel: str
    message: Message
    reason: DeadLetterReason
    error: str = ""


class Outcome(enum.Enum):
    """What became of one message handed to the application."""

    OK = "ok"
    CONSUME_LATER = "consume-later"
    ERROR = "error"


async def _no_ack() -> None:
    return None


def _report_late_message(channel: str, receiving: asyncio.Future) -> None:
    """A receive abandoned at stop returned a message after all: say so, it will not be handled."""
    if receiving.cancelled() or receiving.exception() is not None:
        return
    message, _ = receiving.result()
    logger.error(
        "A message of type %r arrived on channel %r after the worker stopped waiting for it; it "
        "was not handled (left unacknowledged on layers with acknowledgements)",
        message.get("type"),
        channel,
    )


class ChannelApplication:
    """The application instance serving one channel, fed one message at a time.

    `handle(message)` returns once the outcome of that message is known (see the module docstring).
    """

    def __init__(self, application: ASGIApp, channel: str) -> None:
        self.application = application
        self.channel = channel
        self._task: asyncio.Task | None = None
        self._inbox: asyncio.Queue[tuple[Message, asyncio.Future]] = asyncio.Queue()
        self._in_hand: asyncio.Future | None = None

    def _start(self) -> None:
        self._inbox = asyncio.Queue()
        self._in_hand = None
        scope: Scope = {"type": "channel", "channel": self.channel, "asgi": {"version": "3.0"}}
        self._task = asyncio.ensure_future(self.application(scope, self._receive, self._send))
        self._task.add_done_callback(self._instance_ended)

    async def _receive(self) -> Message:
        if self._in_hand is not None and not self._in_hand.done():
            # Asking for the next message means the handler of the previous one returned.
            self._in_hand.set_result((Outcome.OK, None))
        message, finished = await self._inbox.get()
        self._in_hand = finished
        return message

    async def _send(self, message: Message) -> None:
        raise RuntimeError(
            f"A worker application cannot send ASGI messages (got {message.get('type')!r} on "
            f"channel {self.channel!r}); send to the channel layer instead"
        )

    async def handle(self, message: Message) -> tuple[Outcome, BaseException | None]:
        """Feed one message to the application and wait until its outcome is known."""
        if self._task is None or self._task.done():
            self._start()
        finished: asyncio.Future[tuple[Outcome, BaseException | None]] = (
            asyncio.get_running_loop().create_future()
        )
        self._inbox.put_nowait((message, finished))
        return await finished

    def _instance_ended(self, task: asyncio.Task) -> None:
        """Settle the message in hand (if any) with how the instance ended.

        An instance failing between messages (on a message from its own channel-layer channel,
        say) is logged; the next message gets a fresh instance.
        """
        if task is not self._task:
            return
        error: BaseException | None
        if task.cancelled():
            error = RuntimeError("the application instance was cancelled")
        else:
            error = task.exception()
        in_hand = self._in_hand
        if in_hand is not None and not in_hand.done():
            if isinstance(error, ConsumeLater):
                in_hand.set_result((Outcome.CONSUME_LATER, error))
            elif error is not None:
                in_hand.set_result((Outcome.ERROR, error))
            else:
                # It took the message and then ended (StopConsumer, or a plain function app).
                in_hand.set_result((Outcome.OK, None))
        elif error is not None and not task.cancelled():
            logger.error(
                "The application instance for channel %r failed between messages",
                self.channel,
                exc_info=error,
            )
        while not self._inbox.empty():
            _, untaken = self._inbox.get_nowait()
            untaken.set_result(
                (Outcome.ERROR, RuntimeError("the application ended without receiving it"))
            )

    async def close(self) -> None:
        """Cancel the application instance and wait for it to end."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        self._task = None


class Worker:
    """Serves `channels` of `channel_layer` with `application` until `stop()` is called.

    `application` is the root ASGI application (its ChannelNameRouter picks the consumer for each
    channel). Counters of what happened are in `stats`; given-up messages in `dead_letters`.
    """

    def __init__(
        self,
        application: ASGIApp,
        channels: Iterable[str],
        channel_layer: Any,
        max_retries: int | None = None,
        dead_letter_channel: str | None = None,
    ) -> None:
        self.application = application
        self.channels = list(channels)
        self.channel_layer = channel_layer
        if max_retries is None:
            max_retries = getattr(
                settings, "REALTIME_CONSUME_LATER_MAX_RETRIES", DEFAULT_MAX_RETRIES
            )
        self.max_retries = int(max_retries)
        self.dead_letter_channel = dead_letter_channel or None
        if not self.channels:
            raise ValueError("A worker needs at least one channel to listen on")
        for channel in self.channels:
            if not isinstance(channel, str) or "!" in channel:
                raise ValueError(
                    f"Worker channels must be named, non-process-local channels; got {channel!r}"
                )
        if channel_layer is None:
            raise ValueError(
                "Cannot run a worker without a channel layer (CHANNEL_LAYERS is empty)"
            )
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be 0 or more, got {self.max_retries}")
        self.dead_letters: deque[DeadLetter] = deque(maxlen=DEAD_LETTER_LIMIT)
        self.stats = {"handled": 0, "requeued": 0, "errors": 0, "dead_letters": 0}
        self._stop_requested = False
        self._stop_signal: asyncio.Future[None] | None = None

    def stop(self) -> None:
        """Ask the worker to stop once every channel has finished its message in hand."""
        self._stop_requested = True
        if self._stop_signal is not None and not self._stop_signal.done():
            self._stop_signal.set_result(None)

    @property
    def stopping(self) -> bool:
        return self._stop_requested

    async def run(self) -> None:
        """Consume until `stop()`; returns when every channel has finished its message in hand."""
        self._stop_signal = asyncio.get_running_loop().create_future()
        if self._stop_requested:
            self._stop_signal.set_result(None)
        logger.info("Worker listening on channels %s", ", ".join(self.channels))
        tasks = [asyncio.ensure_future(self._serve(channel)) for channel in self.channels]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        logger.info("Worker stopped")

    async def _serve(self, channel: str) -> None:
        instance = ChannelApplication(self.application, channel)
        try:
            while True:
                received = await self._next_message(channel)
                if received is None:
                    return
                message, ack = received
                if not await self._process(channel, instance, message):
                    continue  # not settled: left unacknowledged for the layer to deliver again
                try:
                    await ack()
                except Exception:
                    logger.exception("Acknowledging a message on channel %r failed", channel)
        finally:
            await instance.close()

    async def _next_message(self, channel: str) -> tuple[Message, Acknowledge] | None:
        """The channel's next message, or None once a stop is requested while waiting for one."""
        assert self._stop_signal is not None
        failures = 0
        while not self._stop_requested:
            receiving: asyncio.Future[Any] = asyncio.ensure_future(self._receive(channel))
            try:
                await asyncio.wait(
                    {receiving, self._stop_signal}, return_when=asyncio.FIRST_COMPLETED
                )
            except asyncio.CancelledError:
                receiving.cancel()
                raise
            if not receiving.done():
                # Stop requested while waiting. Some layers ignore a cancel while blocked
                # (channels_redis on redis-py 8), so the wait for the receive to end is bounded.
                receiving.cancel()
                await asyncio.wait({receiving}, timeout=RECEIVE_CANCEL_GRACE)
                if not receiving.done():
                    logger.warning(
                        "Receiving from channel %r did not end within %.0fs of being cancelled; "
                        "stopping without waiting for it",
                        channel,
                        RECEIVE_CANCEL_GRACE,
                    )
                    receiving.add_done_callback(functools.partial(_report_late_message, channel))
                    return None
            try:
                # A receive that completed just as the stop landed still hands over its message.
                return receiving.result()
            except asyncio.CancelledError:
                return None
            except Exception:
                failures += 1
                delay = LAYER_ERROR_BACKOFF.delay(failures)
                logger.exception(
                    "Receiving from channel %r failed; retrying in %.1fs", channel, delay
                )
                await asyncio.wait({self._stop_signal}, timeout=delay)
        return None

    async def _receive(self, channel: str) -> tuple[Message, Acknowledge]:
        receive_with_ack = getattr(self.channel_layer, "receive_with_ack", None)
        if receive_with_ack is not None:
            message, ack = await receive_with_ack(channel)
            return message, ack
        return await self.channel_layer.receive(channel), _no_ack

    async def _process(self, channel: str, instance: ChannelApplication, message: Message) -> bool:
        """Handle one message; True once its outcome is settled (so it may be acknowledged)."""
        outcome, error = await instance.handle(message)
        if outcome is Outcome.OK:
            self.stats["handled"] += 1
        elif outcome is Outcome.CONSUME_LATER:
            return await self._consume_later(channel, message)
        else:
            self.stats["errors"] += 1
            logger.error(
                "Error handling message of type %r on channel %r",
                message.get("type"),
                channel,
                exc_info=error,
            )
            await self._dead_letter(channel, message, DeadLetterReason.ERROR, error)
        return True

    async def _consume_later(self, channel: str, message: Message) -> bool:
        """Re-queue a deferred message at the back of its channel, or dead-letter it.

        A layer that cannot take the message (Redis unreachable) is retried with back-off until
        it does or the worker stops; then the message stays unacknowledged (False), so a durable
        layer delivers it again once this worker is gone.
        """
        retries = int(message.get(RETRIES_KEY, 0))
        if retries >= self.max_retries:
            await self._dead_letter(channel, message, DeadLetterReason.RETRIES_EXHAUSTED)
            return True
        failures = 0
        while True:
            try:
                await self.channel_layer.send(channel, {**message, RETRIES_KEY: retries + 1})
            except ChannelFull as error:
                await self._dead_letter(channel, message, DeadLetterReason.CHANNEL_FULL, error)
                return True
            except Exception:
                failures += 1
                if self._stop_requested:
                    logger.exception(
                        "Could not re-queue a message of type %r on channel %r; stopping with "
                        "it unacknowledged",
                        message.get("type"),
                        channel,
                    )
                    return False
                delay = LAYER_ERROR_BACKOFF.delay(failures)
                logger.exception(
                    "Re-queueing a message on channel %r failed; retrying in %.1fs", channel, delay
                )
                assert self._stop_signal is not None
                await asyncio.wait({self._stop_signal}, timeout=delay)
            else:
                self.stats["requeued"] += 1
                return True

    async def _dead_letter(
        self,
        channel: str,
        message: Message,
        reason: DeadLetterReason,
        error: BaseException | None = None,
    ) -> None:
        letter = DeadLetter(channel, message, reason, repr(error) if error is not None else "")
        self.dead_letters.append(letter)
        self.stats["dead_letters"] += 1
        logger.warning(
            "Dead letter on channel %r: message of type %r (%s, retried %d times)%s",
            channel,
            message.get("type"),
            reason.value,
            int(message.get(RETRIES_KEY, 0)),
            f": {letter.error}" if letter.error else "",
        )
        if self.dead_letter_channel is None:
            return
        try:
            await self.channel_layer.send(
                self.dead_letter_channel,
                {
                    "type": DEAD_LETTER_MESSAGE_TYPE,
                    "channel": channel,
                    "reason": reason.value,
                    "error": letter.error,
                    "message": message,
                },
            )
        except Exception:
            logger.exception("Could not forward a dead letter to %r", self.dead_letter_channel)


def channel_route_names(application: Any) -> list[str]:
    """The channel names served by the root application's ChannelNameRouter, or by the routes
    of its "channel" entry when that is a list of route()s ([] if none).

    Follows ProtocolTypeRouter's "channel" route and any middleware around it (``.inner``).
    """
    from realtime.routing import ChannelNameRouter, FilterRouter, ProtocolTypeRouter

    app = application
    seen: set[int] = set()
    while app is not None and id(app) not in seen:
        seen.add(id(app))
        if isinstance(app, ChannelNameRouter):
            return app.channel_names()
        if isinstance(app, FilterRouter):
            return sorted(app.channel_names())  # route("thumbnails-generate", ...) names them
        if isinstance(app, ProtocolTypeRouter):
            app = app.application_mapping.get("channel")
        else:
            app = getattr(app, "inner", None)
    return []


INPROCESS_WORKER_MODES = {"on": True, "off": False, "auto": None}


def inprocess_worker_wanted(mode: str, channel_layer: Any) -> bool:
    """Whether a web server process should run the worker itself (`manage.py serve`).

    `mode` is settings.REALTIME_INPROCESS_WORKER: "on", "off", or "auto" (only when the layer is
    the in-memory one, which a worker in another process could not reach). No layer: never.
    """
    from realtime.layers.memory import InMemoryChannelLayer

    key = str(mode).strip().lower()
    if key not in INPROCESS_WORKER_MODES:
        raise ValueError(
            f"REALTIME_INPROCESS_WORKER must be one of {sorted(INPROCESS_WORKER_MODES)}, "
            f"got {mode!r}"
        )
    if channel_layer is None:
        return False
    choice = INPROCESS_WORKER_MODES[key]
    if choice is None:
        return isinstance(channel_layer, InMemoryChannelLayer)
    return choice
