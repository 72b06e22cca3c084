"""Consumers: ASGI applications written as a class with one method per event type.

An event's "type" names its handler, dots becoming underscores:

    {"type": "websocket.connect"}             -> websocket_connect(message)
    {"type": "chat.message", "text": "hi"}    -> chat_message(message)   (from the channel layer)

One consumer instance serves one connection (`Consumer.as_asgi()` builds the per-connection ASGI
app). It listens on two inputs at once: the ASGI `receive` of its connection, and, when a channel
layer is configured, its own layer channel `self.channel_name`, so anything sent to that channel or
to a group it belongs to reaches a handler. A handler raises StopConsumer to end the connection; on
the way out the consumer leaves every group it joined with `join_groups()`.

A WebSocket consumer with no handler for a `websocket.send` or `websocket.close` message from the
layer passes it to the client: that is how Channels 1.x-shaped content sent to a group it is in
(`Group("chat").send({"text": "hi"})`) reaches the socket as a frame. It passes a clean copy, and
only while the socket's state allows it: never before the consumer accepted the socket or after
it was closed (`realtime.websocket_state`, where the reasons are; Channels raises ValueError
instead, ending the connection).

`AsyncConsumer` runs handlers on the event loop; `SyncConsumer` runs each one in a thread (through
`database_sync_to_async`), so handlers may use the ORM, and `send()` is then a plain call.

Difference from Django Channels (4.2 and later), on purpose: Channels hops to the shared sync
thread to close stale database connections before *every* async handler, so all the consumers of
a process queue up on that one thread even when no handler touches the database. Here an async
consumer's database access goes through `database_sync_to_async`, which does that cleanup around
the call itself; handlers that never touch the database never leave the event loop. With the
in-memory layer, a group_send to 200 sockets delivers several times more frames per second
(bench/core_consumers.py). The price: Django's async ORM methods (`aget()`, `acreate()`) do no
such cleanup, so a long-lived consumer should reach the database through
`database_sync_to_async`, or call `await realtime.db.aclose_old_connections()` first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, ClassVar

from asgiref.sync import async_to_sync

from realtime.db import database_sync_to_async
from realtime.exceptions import InvalidChannelLayerError, StopConsumer
from realtime.layers import DEFAULT_CHANNEL_LAYER, get_channel_layer
from realtime.types import Message, Receive, Scope, Send
from realtime.websocket_state import CLIENT_EVENT_TYPES, SocketTracker

logger = logging.getLogger(__name__)

# Events only the protocol server may send an application (what the client did, or the
# server's lifecycle). One that arrives through the channel layer is a forgery: anyone who can
# write to the layer would otherwise speak as any connected client.
SERVER_EVENT_TYPES = frozenset(
    {
        "websocket.connect",
        "websocket.receive",
        "websocket.disconnect",
        "http.request",
        "http.disconnect",
        "lifespan.startup",
        "lifespan.shutdown",
    }
)


def get_handler_name(message: Message) -> str:
    """The method name for an event: "websocket.receive" -> "websocket_receive"."""
    if "type" not in message:
        raise ValueError(f"Incoming message has no 'type' attribute: {message!r}")
    message_type = message["type"]
    if not isinstance(message_type, str):
        raise ValueError(f"Message type must be a string, got {message_type!r}")
    if message_type.startswith("_"):
        raise ValueError(f"Malformed type in message (leading underscore): {message_type!r}")
    return message_type.replace(".", "_")


class _Turn:
    """Whose turn it is to dispatch, among the receivers of one consumer: a fair lock whose
    uncontended acquire is a plain attribute check (every delivery takes it, and it is rarely
    contended). `release` hands the turn straight to the longest waiter, so a receiver whose
    messages keep coming cannot starve the others.

        if turn.busy:
            await turn.wait()   # returns holding the turn
        else:
            turn.busy = True
        try: ... finally: turn.release()
    """

    __slots__ = ("busy", "waiters")

    def __init__(self) -> None:
        self.busy = False
        self.waiters: deque[asyncio.Future[None]] = deque()

    async def wait(self) -> None:
        """Wait for the turn to be handed over (the caller holds it on return)."""
        waiter = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over, then cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # release() may have dropped it already
                    self.waiters.remove(waiter)
            raise

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # still busy: the turn is the waiter's now
                return
        self.busy = False


async def await_many_dispatch(
    receivers: Sequence[Callable[[], Awaitable[Message]]],
    dispatch: Callable[[Message], Awaitable[Any]],
) -> None:
    """Wait on every receiver at once and hand each message to `dispatch`, one at a time, until
    `dispatch` raises (StopConsumer included). A receiver is asked for its next message only after
    the handler of its previous one has returned. Pending receives are cancelled on the way out.

    Each receiver has one long-lived task that receives and then dispatches under a lock shared by
    all of them: a message already queued for the consumer is handled without another trip
    through the event loop (no task, wait or wake-up per message), which is most of the cost of
    forwarding a broadcast to hundreds of sockets."""
    turn = _Turn()

    async def pump(receiver: Callable[[], Awaitable[Message]]) -> None:
        while True:
            message = await receiver()
            if turn.busy:
                await turn.wait()
            else:
                turn.busy = True
            try:
                await dispatch(message)
            finally:
                turn.release()

    tasks = [asyncio.ensure_future(pump(receiver)) for receiver in receivers]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a pump only ends by raising: StopConsumer, or a handler's error
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks)
        for task in tasks:
            if not task.cancelled():
                task.exception()  # retrieved, so asyncio does not log it as lost


def _own_init_keywords(consumer_class: type) -> set[str] | None:
    """The keyword parameters of the first `__init__` a class outside `realtime` defines, or None
    when there is none. An empty set means that `__init__` takes `**kwargs` (anything)."""
    for klass in consumer_class.__mro__:
        if "__init__" not in vars(klass) or klass.__module__.split(".")[0] == "realtime":
            continue
        if klass is object:
            return None
        parameters = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return set()
        return {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return None


class ConsumerApplication:
    """The per-connection ASGI application `Consumer.as_asgi(**initkwargs)` returns: each call
    builds a fresh consumer with `initkwargs` and runs it."""

    def __init__(self, consumer_class: type[AsyncConsumer], initkwargs: dict[str, Any]) -> None:
        self.consumer_class = consumer_class
        self.consumer_initkwargs = initkwargs
        functools.update_wrapper(self, consumer_class, updated=())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        consumer = self.consumer_class(**self.consumer_initkwargs)
        await consumer(scope, receive, send)

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.consumer_initkwargs.items())
        return f"<{self.consumer_class.__qualname__}.as_asgi({arguments})>"


class AsyncConsumer:
    """Base consumer: dispatches each event to the async method its "type" names.

    Attributes while running: `scope`, `channel_layer` (the layer named by `channel_layer_alias`,
    None when CHANNEL_LAYERS has no such alias), `channel_name` (a fresh process-local channel on
    that layer), `groups` (group names the generic consumers join when the client connects).
    An event with no handler raises `ValueError("No handler for message type chat.mesage")`.
    """

    _sync: ClassVar[bool] = False
    channel_layer_alias: ClassVar[str] = DEFAULT_CHANNEL_LAYER
    groups: list[str] | None = None

    scope: Scope
    channel_layer: Any
    channel_name: str | None
    channel_receive: Callable[[], Awaitable[Message]] | None
    base_send: Any
    # The socket's state, kept for a WebSocket consumer that routes no layer frames itself.
    socket_tracker: SocketTracker | None

    def __init__(self, **kwargs: Any) -> None:
        own_init = _own_init_keywords(type(self)) if kwargs else None
        for key, value in kwargs.items():
            if hasattr(type(self), key):
                setattr(self, key, value)
            elif own_init is None:
                raise TypeError(
                    f"{type(self).__name__}() received an invalid keyword {key!r}; "
                    "only attributes the class already has may be set"
                )
            # else: the class's own __init__ took it (and passed it on): it is that __init__'s
        self.groups = list(self.groups or [])
        self._joined_groups: list[str] = []

    @classmethod
    def as_asgi(cls, **initkwargs: Any) -> ConsumerApplication:
        """The ASGI application that serves each connection with a new `cls(**initkwargs)`.

        Keywords must name attributes the class already has, or parameters of the class's own
        `__init__` (as in Channels, where `as_asgi(room="lobby")` reaches `__init__(self, room,
        **kwargs)`); a typo fails here, not on the first connection:
        `ChatConsumer.as_asgi(channel_layer_alias="redis")`.
        """
        own_init = _own_init_keywords(cls)
        for key in initkwargs:
            if hasattr(cls, key) or (own_init is not None and (not own_init or key in own_init)):
                continue
            raise TypeError(
                f"{cls.__name__}.as_asgi() received an invalid keyword {key!r}; "
                "as_asgi() only accepts arguments that are already attributes of the class"
                + (f" or that its __init__ takes ({sorted(own_init)})" if own_init else "")
            )
        return ConsumerApplication(cls, initkwargs)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        self.channel_layer = get_channel_layer(self.channel_layer_alias)
        self.channel_name = None
        self.channel_receive = None
        if self.channel_layer is not None:
            self.channel_name = await self.channel_layer.new_channel()
            self.channel_receive = self._receive_from_layer
        self.socket_tracker = None
        if scope.get("type") == "websocket" and not self._routes_client_events():
            self.socket_tracker = SocketTracker()
            send = self.socket_tracker.watch_send(send)
            receive = self.socket_tracker.watch_receive(receive)
        self.base_send = async_to_sync(send) if self._sync else send
        receivers: list[Callable[[], Awaitable[Message]]] = [receive]
        if self.channel_receive is not None:
            receivers.append(self.channel_receive)
        try:
            await await_many_dispatch(receivers, self.dispatch)
        except StopConsumer:
            pass
        finally:
            await self._leave_joined_groups()

    async def _receive_from_layer(self) -> Message:
        """The next message for this consumer's channel, skipping any that claims to come from
        the protocol server (SERVER_EVENT_TYPES): the client's frames and disconnects reach a
        consumer only from its own connection."""
        while True:
            message = await self.channel_layer.receive(self.channel_name)
            if message.get("type") not in SERVER_EVENT_TYPES:
                return message
            logger.warning(
                "realtime: dropped a %r event sent through the channel layer to %s; only the "
                "protocol server sends those",
                message.get("type"),
                self.channel_name,
            )

    async def dispatch(self, message: Message) -> None:
        """Run the handler for `message["type"]`."""
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            if self._is_client_event(message):
                event = self.socket_tracker.from_layer(message)  # type: ignore[union-attr]
                if event is not None:
                    await self.base_send(event)
                return
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    @classmethod
    def _routes_client_events(cls) -> bool:
        """Whether the class handles layer frames and closes itself (the generic WebSocket
        consumers do, through their state machine)."""
        return all(hasattr(cls, name.replace(".", "_")) for name in CLIENT_EVENT_TYPES)

    def _is_client_event(self, message: Message) -> bool:
        """A frame or close for this socket, sent through the layer in Channels 1.x's shape
        (`Group("chat").send({"text": "hi"})` arrives as `{"type": "websocket.send", ...}`),
        to a consumer with no handler of its own for it."""
        return self.socket_tracker is not None and message["type"] in CLIENT_EVENT_TYPES

    async def send(self, message: Message) -> None:
        """Send an ASGI event to the client's server."""
        await self.base_send(message)

    async def join_groups(self, groups: Iterable[str] | None = None) -> None:
        """Add this consumer's channel to `groups` (default: `self.groups`); they are left again
        when the consumer ends, whatever way it ends. Groups already joined are skipped."""
        wanted = list(self.groups or []) if groups is None else list(groups)
        new_groups = [group for group in dict.fromkeys(wanted) if group not in self._joined_groups]
        if not new_groups:
            return
        layer = self._group_layer()
        for group in new_groups:
            await layer.group_add(group, self.channel_name)
            self._joined_groups.append(group)

    async def leave_groups(self, groups: Iterable[str] | None = None) -> None:
        """Remove this consumer's channel from `groups` (default: every group it joined)."""
        groups = list(self._joined_groups) if groups is None else list(groups)
        if not groups:
            return
        layer = self._group_layer()
        for group in groups:
            await layer.group_discard(group, self.channel_name)
            if group in self._joined_groups:
                self._joined_groups.remove(group)

    async def _leave_joined_groups(self) -> None:
        # Best effort on the way out: a layer that cannot be reached right now (Redis restarting)
        # must not turn the end of a connection into a crash; memberships expire by themselves
        # after the layer's group_expiry.
        if self._joined_groups and self.channel_layer is not None:
            try:
                await self.leave_groups()
            except Exception:
                logger.warning(
                    "%s could not leave groups %s of channel %s; they expire by themselves",
                    type(self).__name__,
                    self._joined_groups,
                    self.channel_name,
                    exc_info=True,
                )

    def _group_layer(self) -> Any:
        layer = self.channel_layer
        if layer is None or not hasattr(layer, "group_add"):
            raise InvalidChannelLayerError(
                f"Consumer groups need a channel layer with the 'groups' extension; the "
                f"{self.channel_layer_alias!r} layer is {layer!r} (BACKEND is unconfigured or "
                "doesn't support groups)"
            )
        return layer


class SyncConsumer(AsyncConsumer):
    """Consumer whose handlers are plain functions, each run in a worker thread.

    Handlers may use the ORM (stale connections are closed around each one, as Django does per
    request) and call `self.send(message)` synchronously.
    """

    _sync = True

    @database_sync_to_async
    def dispatch(self, message: Message) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            if self._is_client_event(message):
                event = self.socket_tracker.from_layer(message)  # type: ignore[union-attr]
                if event is not None:
                    self.base_send(event)
                return
            raise ValueError(f"No handler for message type {message['type']}")
        handler(message)

    def send(self, message: Message) -> None:  # type: ignore[override]
        """Send an ASGI event to the client's server (blocks until it is handed over)."""
        self.base_send(message)


__all__ = [
    "DEFAULT_CHANNEL_LAYER",
    "AsyncConsumer",
    "ConsumerApplication",
    "SyncConsumer",
    "await_many_dispatch",
    "get_handler_name",
]
