"""Seed 004, the Channels 1.x API reference: consumers, Message, Channel, Group, channel_layers and
the session and origin decorators, with `channels` replaced by `realtime`, run through the
communicators and the worker, asserting what the text says happens.

Not carried over, because ASGI 3 and Django do these jobs now (docs/coming-from-channels.md):
`layer.router` (the routes are the root application's; a list of routes offers the same
`channel_names()` and `match(message)`), `AsgiRequest(message)` and `AsgiHandler(message)` /
`encode_response()` (Django's ASGI handler turns requests into views and responses into events).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore

import realtime
from realtime import DEFAULT_CHANNEL_LAYER, Channel, channel_layers
from realtime.db import database_sync_to_async
from realtime.exceptions import ConsumeLater
from realtime.message import Message
from realtime.routing import FilterRouter, ProtocolTypeRouter, route
from realtime.security.websockets import allowed_hosts_only
from realtime.sessions import channel_and_http_session, channel_session, http_session
from realtime.testing import ApplicationCommunicator, WebsocketCommunicator
from realtime.tests.helpers import wait_until
from realtime.worker import Worker

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def two_layers(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "realtime.layers.InMemoryChannelLayer"},
        "other": {"BACKEND": "realtime.layers.InMemoryChannelLayer"},
    }


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[None]:
    task = asyncio.ensure_future(worker.run())
    try:
        yield
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


# Consumers ------------------------------------------------------------------------------------------


async def test_a_consumer_is_any_callable_of_one_message_and_its_return_is_ignored() -> None:
    seen: list[Any] = []

    class Callable_:
        def __call__(self, message: Any) -> str:
            seen.append(message.content["n"])
            return "ignored"

    communicator = ApplicationCommunicator(
        [route("numbers", Callable_())], {"type": "channel", "channel": "numbers"}
    )
    await communicator.send_input({"type": "number", "n": 1})
    await communicator.send_input({"type": "number", "n": 2})
    assert await communicator.receive_nothing()  # nothing is made of the return value
    assert seen == [1, 2]


async def test_consume_later_requeues_at_the_back_at_most_ten_times_then_drops() -> None:
    handled: list[str] = []

    def job(message: Any) -> None:
        handled.append(message["name"])
        if message["name"] == "stuck" or (message["name"] == "late" and handled.count("late") == 1):
            raise ConsumeLater()

    layer = channel_layers[DEFAULT_CHANNEL_LAYER]
    worker = Worker(ProtocolTypeRouter({"channel": [route("jobs", job)]}), ["jobs"], layer)
    for name in ("late", "next", "stuck"):
        await layer.send("jobs", {"type": "job.run", "name": name})
    async with running(worker):
        await wait_until(lambda: worker.dead_letters)
    assert handled[:3] == ["late", "next", "stuck"]
    assert handled[3] == "late"  # went to the back of the channel, ran again after the others
    assert handled.count("stuck") == 11  # the first try and 10 re-queues, then dropped
    assert worker.dead_letters[0].message["name"] == "stuck"


# Message ---------------------------------------------------------------------------------------------


async def test_message_attributes() -> None:
    seen: list[Message] = []
    communicator = ApplicationCommunicator(
        [route("jobs", seen.append)], {"type": "channel", "channel": "jobs"}
    )
    await communicator.send_input({"type": "job.run", "id": 3})
    await communicator.receive_nothing()
    (message,) = seen
    assert message.content == {"type": "job.run", "id": 3}
    assert message.channel == Channel("jobs")  # a Channel object for the channel it came on
    assert message.reply_channel is None  # this message had none
    assert message.channel_layer is channel_layers["default"]


async def test_reply_channel_is_a_channel_for_websocket_messages() -> None:
    def ws_connect(message: Any) -> None:
        assert isinstance(message.reply_channel, Channel)
        message.reply_channel.send({"accept": True})

    assert (await WebsocketCommunicator([route("websocket.connect", ws_connect)], "/").connect())[0]


# Channel ----------------------------------------------------------------------------------------------


async def test_channel_constructor_name_alias_and_layer() -> None:
    channel = realtime.Channel("thumbnails", alias=DEFAULT_CHANNEL_LAYER, channel_layer=None)
    assert channel.name == "thumbnails"
    assert channel.channel_layer is channel_layers["default"]
    await channel.send({"type": "thumbnail.make"})
    assert await channel_layers["default"].receive("thumbnails") == {"type": "thumbnail.make"}
    # On another layer, by alias or by the layer object.
    other = channel_layers["other"]
    await Channel("thumbnails", alias="other").send({"type": "by.alias"})
    await Channel("thumbnails", channel_layer=other).send({"type": "by.layer"})
    assert [(await other.receive("thumbnails"))["type"] for _ in range(2)] == [
        "by.alias",
        "by.layer",
    ]


# Group ------------------------------------------------------------------------------------------------


async def test_group_add_send_discard_with_names_or_channels() -> None:
    layer = channel_layers["default"]
    a, b = await layer.new_channel(), await layer.new_channel()
    group = realtime.Group("liveblog", alias=DEFAULT_CHANNEL_LAYER, channel_layer=None)
    assert group.name == "liveblog" and group.channel_layer is layer
    await group.add(a)
    await group.add(a)  # already in the group: nothing changes
    await group.add(Channel(b))
    await group.send({"type": "post", "n": 1})
    assert [await layer.receive(a), await layer.receive(b)] == [{"type": "post", "n": 1}] * 2
    assert await asyncio.wait_for(_nothing(layer, a), 1)  # one copy for a, not two
    await group.discard(Channel(a))
    await group.discard("not-a-member")  # not in the group: nothing happens
    await group.send({"type": "post", "n": 2})
    assert (await layer.receive(b))["n"] == 2
    assert await _nothing(layer, a)


async def _nothing(layer: Any, channel: str) -> bool:
    try:
        await asyncio.wait_for(layer.receive(channel), 0.05)
    except TimeoutError:
        return True
    return False


# channel_layers --------------------------------------------------------------------------------------


def test_layers_come_by_alias_and_know_it() -> None:
    from realtime import channel_layers

    layer = channel_layers["default"]
    assert layer.alias == "default"
    assert channel_layers["other"].alias == "other"


def test_routes_offer_the_layer_routers_interface() -> None:
    def ws_connect(message: Any) -> None:
        pass

    router = FilterRouter([route("websocket.connect", ws_connect, path=r"^/chat/$")])
    assert router.channel_names() == {"websocket.connect"}
    hit = Message({"type": "websocket.connect", "path": "/chat/"}, "websocket.connect")
    miss = Message({"type": "websocket.connect", "path": "/other/"}, "websocket.connect")
    assert router.match(hit) == (ws_connect, {})
    assert router.match(miss) is None


# Decorators ----------------------------------------------------------------------------------------


@database_sync_to_async
def browser_session(**values: Any) -> str:
    session = SessionStore()
    session.update(values)
    session.create()
    assert session.session_key is not None
    return session.session_key


async def test_the_decorators_as_the_reference_describes_them(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["example.com"]
    key = await browser_session(name="Ann")
    log: list[Any] = []

    @allowed_hosts_only
    @channel_and_http_session
    def ws_connect(message: Any) -> None:
        message.channel_session["greeted"] = message.http_session["name"]
        message.reply_channel.send({"accept": True})

    @channel_session
    def ws_receive(message: Any) -> None:
        log.append(message.channel_session["greeted"])

    @http_session
    def ws_disconnect(message: Any) -> None:
        log.append(message.http_session is None)

    routes = [
        route("websocket.connect", ws_connect),
        route("websocket.receive", ws_receive),
        route("websocket.disconnect", ws_disconnect),
    ]
    headers = [
        (b"origin", b"https://example.com"),
        (b"cookie", f"{django_settings.SESSION_COOKIE_NAME}={key}".encode()),
    ]
    communicator = WebsocketCommunicator(routes, "/", headers=headers)
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data="x")
    await communicator.disconnect()
    assert log == ["Ann", False]

    # Another host's page, or no Origin at all: refused, the consumer never runs.
    for origin in ([(b"origin", b"https://evil.example")], []):
        refused = WebsocketCommunicator(routes, "/", headers=origin)
        assert (await refused.connect())[0] is False

    # No session to inflate: None, and none is made (that is a view's job).
    @http_session
    def peek(message: Any) -> None:
        log.append(message.http_session)
        message.reply_channel.send({"accept": True})

    peeking = WebsocketCommunicator(
        [route("websocket.connect", peek)], "/?session_key=unknown-key-012345"
    )
    assert (await peeking.connect())[0]
    assert log[-1] is None
    assert not await database_sync_to_async(SessionStore().exists)("unknown-key-012345")
