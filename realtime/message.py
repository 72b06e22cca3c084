"""Message consumers: plain functions of one ``message``, as Channels 1.x wrote them.

A message consumer is a function (``def`` or ``async def``) taking one positional argument,
routed with :func:`realtime.routing.route`::

    def ws_connect(message):
        message.reply_channel.send({"accept": True})
        Group("chat").add(message.reply_channel)

    def ws_message(message):
        Group("chat").send({"text": message.content["text"]})

    application = ProtocolTypeRouter({"websocket": [
        route("websocket.connect", ws_connect, path=r"^/chat/$"),
        route("websocket.receive", ws_message, path=r"^/chat/$"),
    ]})

What a consumer gets (:class:`Message`):

``content``
    the event, a dict. For WebSocket and HTTP connections it also carries the connection's keys,
    as Channels 1.x messages did, and a per-connection counter::

        {"type": "websocket.receive", "text": "hi", "path": "/chat/", "headers": [...],
         "query_string": b"", "client": [...], "server": [...], "order": 1,
         "reply_channel": "specific.a1b2!c3d4"}

    For a worker channel it is the message as sent (``{"type": "thumbnail.make", "id": 3}``).
``channel``
    a :class:`~realtime.layers.Channel` named after what the message arrived on: the event type
    (``"websocket.receive"``), or the worker channel's name.
``reply_channel``
    the connection's channel, or for a worker message the ``"reply_channel"`` it names (else
    None). Its ``send()`` takes the 1.x reply shapes: ``{"accept": True}``, ``{"text": ...}``,
    ``{"bytes": ...}``, ``{"close": True | code}`` (and for HTTP ``{"status": 200, "headers":
    [...], "content": b"...", "more_content": False}``). On a WebSocket, a frame sent before any
    accept accepts the socket first; ``{"close": ...}`` or ``{"accept": False}`` before accepting
    refuses the handshake (the browser sees HTTP 403). Other code reaches the socket through the
    channel layer with ``Channel(name).send(...)`` or a group it was added to.
``channel_layer``
    the layer (None when none is configured), ``scope`` the connection's scope (with
    ``scope["user"]``, ``scope["session"]`` when middleware put them there), and
    ``channel_session``, ``http_session``, ``user`` when a decorator of :mod:`realtime.sessions`
    or :mod:`realtime.auth` provided them.

How a connection runs: its events are handled one at a time, in order (channel-layer events
other than frames for the client, ``{"type": "chat.message", ...}``, go to the route for their
type too, as a class consumer's handler would get them); groups its reply channel
was added to (``Group(name).add(message.reply_channel)``) are left when it ends; a message consumer's
held-back sends (``immediately=False``, the default) go out when it returns. With no route for
``websocket.connect`` the socket is accepted, as Channels 1.x did; with none for a disconnect,
nothing happens; with none for anything else, :class:`~realtime.exceptions.RouteNotFound`. A
consumer may raise DenyConnection on ``websocket.connect`` to refuse the socket, and ConsumeLater
on a worker channel to have the message handled again later.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from asgiref.sync import iscoroutinefunction

from realtime.consumer import await_many_dispatch
from realtime.db import database_sync_to_async
from realtime.exceptions import ConsumeLater, DenyConnection, StopConsumer
from realtime.layers import Channel, LayerOperation, get_channel_layer
from realtime.layers.delivery import HeldBackSends, content_events, perform
from realtime.types import Message as Event
from realtime.types import Receive, Scope, Send

logger = logging.getLogger(__name__)

MessageConsumer = Callable[..., Any]

#: Scope keys that describe the connection and go into every message's content (as in 1.x).
CONNECTION_KEYS = (
    "path",
    "raw_path",
    "root_path",
    "query_string",
    "headers",
    "client",
    "server",
    "scheme",
    "method",
    "http_version",
    "subprotocols",
)

_DECORATED_ATTRIBUTES = {
    "channel_session": "channel_session",
    "http_session": "http_session",
    "user": "http_session_user, channel_session_user or channel_session_user_from_http",
}


class Message:
    """One message handed to a message consumer (see the module docstring)."""

    def __init__(
        self,
        content: dict[str, Any],
        channel: Channel | str,
        reply_channel: Channel | None = None,
        channel_layer: Any = None,
        scope: Scope | None = None,
    ) -> None:
        self.content = content
        self.channel = channel if isinstance(channel, Channel) else Channel(channel)
        self.reply_channel = reply_channel
        self.channel_layer = channel_layer
        self.scope: Scope = scope if scope is not None else {}

    def __getattr__(self, name: str) -> Any:
        # Only reached for attributes that were never set.
        decorator = _DECORATED_ATTRIBUTES.get(name)
        if decorator is not None:
            raise AttributeError(
                f"message.{name} is set by the @{decorator} decorator; decorate the consumer "
                f"with it (from realtime.sessions / realtime.auth)"
            )
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __getitem__(self, key: str) -> Any:
        return self.content[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.content.get(key, default)

    def lookup(self, key: str) -> Any:
        """The value filters see for ``key``: the content's, else the scope's (KeyError)."""
        if key in self.content:
            return self.content[key]
        return self.scope[key]

    def __repr__(self) -> str:
        return f"<Message {self.channel.name!r} {self.content!r:.120}>"


async def call_message_consumer(
    consumer: MessageConsumer, message: Message, kwargs: Mapping[str, Any]
) -> None:
    """Run ``consumer(message, **kwargs)``: on the event loop if it is async, else in a thread
    (where the ORM may be used). Sends it holds back go out when it returns; on ConsumeLater
    they are dropped, since the message will be handled again."""
    with HeldBackSends() as held_back:
        try:
            if iscoroutinefunction(consumer):
                await consumer(message, **kwargs)
            else:
                result = await database_sync_to_async(consumer)(message, **kwargs)
                if isinstance(result, Awaitable) and not isinstance(result, LayerOperation):
                    await result
        except ConsumeLater:
            held_back.discard()
            raise
        except Exception:
            # As in Channels 1.x, what the consumer sent before failing still goes out; a send
            # that fails too is logged by flush() and the consumer's own error is what propagates.
            with contextlib.suppress(Exception):
                await held_back.flush()
            raise
    await held_back.flush()


Matcher = Callable[[Message], "tuple[MessageConsumer, dict[str, Any]] | None"]


def is_message_consumer(consumer: Any) -> bool:
    """True for a function of one message; False for a consumer class or an ASGI application
    (``scope, receive, send``), which the decorators hand to the equivalent middleware."""
    if inspect.isclass(consumer) or hasattr(consumer, "consumer_class"):
        return False
    try:
        parameters = inspect.signature(consumer).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return [p.name for p in positional] != ["scope", "receive", "send"]


def message_decorator(
    prepare: Callable[[Message], bool],
    finish: Callable[[Message, bool], None] | None = None,
) -> Callable[[MessageConsumer], MessageConsumer]:
    """A decorator for message consumers, sync or async, from two sync steps (they may use the
    ORM): ``prepare(message)`` before the consumer, returning False to skip it, and
    ``finish(message, succeeded)`` after it. Sync consumers stay sync (the steps run in their
    thread); async ones stay async (the steps run through ``database_sync_to_async``)."""

    def decorator(consumer: MessageConsumer) -> MessageConsumer:
        if iscoroutinefunction(consumer):

            @functools.wraps(consumer)
            async def async_consumer(message: Message, *args: Any, **kwargs: Any) -> Any:
                if not await database_sync_to_async(prepare)(message):
                    return None
                succeeded = False
                try:
                    result = await consumer(message, *args, **kwargs)
                    succeeded = True
                    return result
                finally:
                    if finish is not None:
                        await database_sync_to_async(finish)(message, succeeded)

            return async_consumer

        @functools.wraps(consumer)
        def sync_consumer(message: Message, *args: Any, **kwargs: Any) -> Any:
            if not prepare(message):
                return None
            succeeded = False
            try:
                result = consumer(message, *args, **kwargs)
                succeeded = True
                return result
            finally:
                if finish is not None:
                    finish(message, succeeded)

        return sync_consumer

    return decorator


class ReplyChannel(Channel):
    """The reply channel of a connection served by message consumers: ``send()`` goes straight
    to the connection, in the 1.x reply shapes; its ``name`` is the connection's layer channel,
    so ``Group(...).add(message.reply_channel)`` works."""

    def __init__(self, name: str, connection: MessageConnection) -> None:
        super().__init__(name, channel_layer=connection.channel_layer)
        self.connection = connection
        #: Groups it was added to with Group(...).add(reply_channel): left when the connection ends.
        self.joined_groups: set[str] = set()

    def send(self, content: dict[str, Any], immediately: bool = False) -> LayerOperation:
        events = self.connection.events_for(content)

        async def deliver() -> None:
            for event in events:
                await self.connection.deliver(event)

        return perform(f"{self!r}.send()", deliver, immediately)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Channel) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class MessageConnection:
    """One connection (or worker channel) whose events go to message consumers.

    ``match`` picks the consumer for each message (the filter routes); events the layer delivers
    to the connection's channel are passed to the client (see the module docstring).
    """

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        match: Matcher,
        not_found: Callable[[Message], Exception],
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.send = send
        self.match = match
        self.not_found = not_found
        self.protocol = str(scope.get("type", ""))
        self.channel_layer = get_channel_layer()
        self.order = 0
        #: The ``order`` of the last client message whose handling finished (-1: none yet).
        self.completed_order = -1
        self.reply_channel: ReplyChannel | None = None
        self.accepted = False
        self.closed = False
        self.response_started = False
        self.response_finished = False
        self.connection_content = {key: scope[key] for key in CONNECTION_KEYS if key in scope}

    async def run(self) -> None:
        receivers: list[Callable[[], Awaitable[Event]]] = [self._client_event]
        if self.protocol != "channel":
            if self.channel_layer is not None:
                name = await self.channel_layer.new_channel()
                receivers.append(self._layer_event_receiver(name))
            else:
                name = f"{self.protocol or 'connection'}.local!{secrets.token_hex(12)}"
            self.reply_channel = ReplyChannel(name, self)
        try:
            with contextlib.suppress(StopConsumer):
                await await_many_dispatch(receivers, self._dispatch)
        finally:
            await self._leave_groups()

    async def _leave_groups(self) -> None:
        # Best effort, as class consumers do: memberships expire by themselves anyway.
        if self.reply_channel is None or self.channel_layer is None:
            return
        for group in sorted(self.reply_channel.joined_groups):
            try:
                await self.channel_layer.group_discard(group, self.reply_channel.name)
            except Exception:
                logger.warning(
                    "Could not remove %s from group %r; the membership expires by itself",
                    self.reply_channel.name,
                    group,
                    exc_info=True,
                )
        self.reply_channel.joined_groups.clear()

    async def _client_event(self) -> Event:
        return {"source": "client", "event": await self.receive()}

    def _layer_event_receiver(self, name: str) -> Callable[[], Awaitable[Event]]:
        async def layer_event() -> Event:
            return {"source": "layer", "event": await self.channel_layer.receive(name)}

        return layer_event

    async def _dispatch(self, envelope: Event) -> None:
        event = envelope["event"]
        if envelope["source"] == "client":
            await self.handle(event)
        elif str(event.get("type", "")).startswith(f"{self.protocol}."):
            await self.deliver(event)  # a frame, close or accept for the client
        else:
            # Any other layer event ({"type": "chat.message", ...}) goes to the route for its
            # type, as a class consumer's handler would get it.
            await self.handle(event, from_layer=True)

    def message_for(self, event: Event, from_layer: bool = False) -> Message:
        """The Message a consumer gets for ``event`` (client events are numbered by ``order``;
        layer events are not)."""
        if self.protocol == "channel":
            content = dict(event)
            reply_name = content.get("reply_channel")
            reply = (
                Channel(reply_name, channel_layer=self.channel_layer)
                if isinstance(reply_name, str)
                else None
            )
            return Message(
                content,
                Channel(str(self.scope.get("channel", ""))),
                reply,
                self.channel_layer,
                self.scope,
            )
        assert self.reply_channel is not None
        content = {**self.connection_content, **event, "reply_channel": self.reply_channel.name}
        if not from_layer:
            content["order"] = self.order
            self.order += 1
        return Message(
            content,
            Channel(str(event.get("type", ""))),
            self.reply_channel,
            self.channel_layer,
            self.scope,
        )

    async def handle(self, event: Event, from_layer: bool = False) -> None:
        """Route one event to its consumer and run it."""
        event_type = event.get("type")
        message = self.message_for(event, from_layer)
        matched = self.match(message)
        if matched is None:
            if event_type == "websocket.connect":
                await self.deliver({"type": "websocket.accept"})
                self._completed(message)
                return
            if event_type in ("websocket.disconnect", "http.disconnect"):
                raise StopConsumer()
            raise self.not_found(message)
        consumer, kwargs = matched
        try:
            await call_message_consumer(consumer, message, kwargs)
        except DenyConnection:
            if event_type != "websocket.connect":
                raise
            await self.deliver({"type": "websocket.close", "code": 1000})
        self._completed(message)
        if event_type in ("websocket.disconnect", "http.disconnect") or self.response_finished:
            raise StopConsumer()

    def _completed(self, message: Message) -> None:
        order = message.content.get("order")
        if isinstance(order, int):
            self.completed_order = max(self.completed_order, order)

    def events_for(self, content: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The ASGI events a reply ``content`` stands for on this connection."""
        if self.protocol == "http" and "type" not in content:
            return _http_response_events(content)
        return content_events(content)

    async def deliver(self, event: Event) -> None:
        """Hand one event for the client to the server, keeping the socket's state right."""
        event_type = event.get("type")
        if not isinstance(event_type, str) or not event_type.startswith(f"{self.protocol}."):
            raise TypeError(
                f"A {self.protocol!r} connection cannot send {event!r:.200}; its events are "
                f"'{self.protocol}.*'"
            )
        if self.protocol == "websocket":
            await self._deliver_websocket(event)
            return
        if event_type == "http.response.start":
            self.response_started = True
        elif event_type == "http.response.body" and not event.get("more_body", False):
            self.response_finished = True
        await self.send(dict(event))

    async def _deliver_websocket(self, event: Event) -> None:
        if self.closed:
            return  # the socket is gone: late frames (a group message racing a close) drop
        event_type = event["type"]
        if event_type == "websocket.accept":
            if not self.accepted:
                self.accepted = True
                await self.send(dict(event))
            return
        if event_type == "websocket.send" and not self.accepted:
            # Channels 1.x: a frame on a socket still connecting accepts it first.
            self.accepted = True
            await self.send({"type": "websocket.accept"})
        if event_type == "websocket.close":
            self.closed = True
        await self.send(dict(event))


def _http_response_events(content: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Channels 1.x's http.response content as ASGI events."""
    known = {"status", "headers", "content", "more_content"}
    unknown = sorted(str(key) for key in content if key not in known)
    if unknown:
        raise TypeError(
            f"An HTTP reply takes {sorted(known)} (or an ASGI event with a 'type'), "
            f"got unknown keys {unknown} in {dict(content)!r:.200}"
        )
    events: list[dict[str, Any]] = []
    if "status" in content:
        headers = [
            (
                name.encode("latin-1") if isinstance(name, str) else name,
                value.encode("latin-1") if isinstance(value, str) else value,
            )
            for name, value in content.get("headers", [])
        ]
        events.append(
            {"type": "http.response.start", "status": int(content["status"]), "headers": headers}
        )
    body = content.get("content", b"")
    if isinstance(body, str):
        body = body.encode("utf-8")
    events.append(
        {
            "type": "http.response.body",
            "body": body,
            "more_body": bool(content.get("more_content", False)),
        }
    )
    return events


__all__ = [
    "CONNECTION_KEYS",
    "Message",
    "MessageConnection",
    "ReplyChannel",
    "call_message_consumer",
    "is_message_consumer",
    "message_decorator",
]
