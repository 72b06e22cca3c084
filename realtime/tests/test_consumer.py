"""AsyncConsumer and SyncConsumer, as a specification: dispatch, channel layer, groups, as_asgi."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from django.contrib.auth import get_user_model

from realtime.consumer import AsyncConsumer, SyncConsumer, await_many_dispatch, get_handler_name
from realtime.exceptions import InvalidChannelLayerError, StopConsumer
from realtime.layers import get_channel_layer
from realtime.layers.memory import InMemoryChannelLayer
from realtime.testing import ApplicationCommunicator

MEMORY_LAYER = {"default": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"}}


@pytest.fixture
def layer(settings: Any) -> Any:
    """A fresh in-memory default layer for this test."""
    settings.CHANNEL_LAYERS = MEMORY_LAYER
    return get_channel_layer()


@pytest.fixture
def no_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}


class Echo(AsyncConsumer):
    """Answers "test.ping" with "test.pong" carrying what it knows about itself."""

    async def test_ping(self, message: Any) -> None:
        await self.send({"type": "test.pong", "value": message.get("value")})

    async def test_whoami(self, message: Any) -> None:
        await self.send({"type": "test.me", "channel": self.channel_name})

    async def test_stop(self, message: Any) -> None:
        raise StopConsumer()


def communicator_for(application: Any, **scope: Any) -> ApplicationCommunicator:
    return ApplicationCommunicator(application, {"type": "test", **scope})


async def whoami(communicator: ApplicationCommunicator) -> str:
    await communicator.send_input({"type": "test.whoami"})
    return (await communicator.receive_output())["channel"]


# Dispatch ----------------------------------------------------------------------------------------


def test_handler_name_replaces_dots_with_underscores() -> None:
    assert get_handler_name({"type": "websocket.connect"}) == "websocket_connect"
    assert get_handler_name({"type": "chat.message.new"}) == "chat_message_new"


def test_handler_name_refuses_a_leading_underscore() -> None:
    with pytest.raises(ValueError, match="leading underscore"):
        get_handler_name({"type": "_private.thing"})


def test_handler_name_refuses_a_message_without_type() -> None:
    with pytest.raises(ValueError, match="no 'type'"):
        get_handler_name({"text": "hi"})


@pytest.mark.usefixtures("no_layer")
async def test_handlers_of_one_consumer_never_overlap_even_when_they_wait() -> None:
    running: list[str] = []
    overlaps: list[tuple[str, ...]] = []
    handled: list[str] = []

    def source(name: str, count: int) -> Any:
        remaining = iter(range(count))

        async def receive() -> dict:
            await asyncio.sleep(0)
            number = next(remaining, None)
            if number is None:
                await asyncio.sleep(3600)
            return {"type": f"{name}.{number}"}

        return receive

    async def dispatch(message: dict) -> None:
        running.append(message["type"])
        if len(running) > 1:
            overlaps.append(tuple(running))
        await asyncio.sleep(0.001)
        running.remove(message["type"])
        handled.append(message["type"])
        if len(handled) == 40:
            raise StopConsumer()

    with pytest.raises(StopConsumer):
        await asyncio.wait_for(
            await_many_dispatch([source("a", 20), source("b", 20)], dispatch), 10
        )
    assert overlaps == []
    assert sorted(handled) == sorted([f"a.{n}" for n in range(20)] + [f"b.{n}" for n in range(20)])


async def test_a_receiver_whose_messages_keep_coming_does_not_starve_the_other() -> None:
    """The layer channel of a busy room always has a message ready; the client's frames must
    still get their turn."""
    handled: list[str] = []

    async def busy_room() -> dict:
        return {"type": "room.event"}  # always ready: never waits

    async def client_frame() -> dict:
        await asyncio.sleep(0.01)
        return {"type": "client.frame"}

    async def dispatch(message: dict) -> None:
        handled.append(message["type"])
        await asyncio.sleep(0)  # the handler yields, as one that sends does
        if message["type"] == "client.frame":
            raise StopConsumer()
        if len(handled) > 200_000:
            raise AssertionError("the client's frame never got its turn")

    with pytest.raises(StopConsumer):
        await asyncio.wait_for(await_many_dispatch([busy_room, client_frame], dispatch), 10)


async def test_event_type_is_dispatched_to_the_method_it_names() -> None:
    communicator = communicator_for(Echo.as_asgi())
    await communicator.send_input({"type": "test.ping", "value": 42})
    assert await communicator.receive_output() == {"type": "test.pong", "value": 42}
    communicator.stop()


@pytest.mark.usefixtures("no_layer")
async def test_unknown_event_type_raises_value_error_naming_it() -> None:
    communicator = communicator_for(Echo.as_asgi())
    await communicator.send_input({"type": "test.pnig"})
    with pytest.raises(ValueError, match=r"No handler for message type test\.pnig"):
        await communicator.wait()


@pytest.mark.usefixtures("no_layer")
async def test_stop_consumer_ends_the_application_cleanly() -> None:
    communicator = communicator_for(Echo.as_asgi())
    await communicator.send_input({"type": "test.stop"})
    await communicator.wait()
    assert communicator.future.done() and communicator.future.exception() is None


@pytest.mark.usefixtures("no_layer")
async def test_consumer_sees_its_scope() -> None:
    class ScopeReader(AsyncConsumer):
        async def test_read(self, message: Any) -> None:
            await self.send({"type": "test.scope", "user": self.scope["user"]})

    communicator = communicator_for(ScopeReader.as_asgi(), user="ann")
    await communicator.send_input({"type": "test.read"})
    assert (await communicator.receive_output())["user"] == "ann"
    communicator.stop()


# as_asgi -----------------------------------------------------------------------------------------


def test_as_asgi_exposes_consumer_class_and_initkwargs() -> None:
    class Greeter(AsyncConsumer):
        greeting = "hello"

    application = Greeter.as_asgi(greeting="hi")
    assert application.consumer_class is Greeter
    assert application.consumer_initkwargs == {"greeting": "hi"}


def test_as_asgi_refuses_a_keyword_the_class_does_not_have() -> None:
    class Greeter(AsyncConsumer):
        greeting = "hello"

    with pytest.raises(TypeError, match="invalid keyword 'greting'"):
        Greeter.as_asgi(greting="hi")


@pytest.mark.usefixtures("no_layer")
async def test_as_asgi_initkwargs_become_attributes_of_each_consumer() -> None:
    class Greeter(AsyncConsumer):
        greeting = "hello"

        async def test_greet(self, message: Any) -> None:
            await self.send({"type": "test.greeting", "text": self.greeting})

    communicator = communicator_for(Greeter.as_asgi(greeting="hi"))
    await communicator.send_input({"type": "test.greet"})
    assert (await communicator.receive_output())["text"] == "hi"
    communicator.stop()


@pytest.mark.usefixtures("no_layer")
async def test_as_asgi_builds_a_new_consumer_per_connection() -> None:
    class Counter(AsyncConsumer):
        count = 0

        async def test_bump(self, message: Any) -> None:
            self.count += 1
            await self.send({"type": "test.count", "count": self.count})

    application = Counter.as_asgi()
    for _ in range(2):
        communicator = communicator_for(application)
        await communicator.send_input({"type": "test.bump"})
        assert (await communicator.receive_output())["count"] == 1
        communicator.stop()


# The channel layer -------------------------------------------------------------------------------


@pytest.mark.usefixtures("no_layer")
async def test_without_a_layer_the_consumer_has_no_channel_name() -> None:
    communicator = communicator_for(Echo.as_asgi())
    assert await whoami(communicator) is None
    communicator.stop()


async def test_consumer_gets_a_process_local_channel_name_on_the_layer(layer: Any) -> None:
    communicator = communicator_for(Echo.as_asgi())
    assert "!" in await whoami(communicator)
    communicator.stop()


async def test_layer_messages_to_the_channel_are_dispatched_to_handlers(layer: Any) -> None:
    communicator = communicator_for(Echo.as_asgi())
    channel = await whoami(communicator)
    await layer.send(channel, {"type": "test.ping", "value": "from the layer"})
    assert await communicator.receive_output() == {"type": "test.pong", "value": "from the layer"}
    communicator.stop()


async def test_channel_layer_alias_selects_the_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"},
        "other": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"},
    }

    class OtherEcho(Echo):
        channel_layer_alias = "other"

    communicator = communicator_for(OtherEcho.as_asgi())
    channel = await whoami(communicator)
    await get_channel_layer("other").send(channel, {"type": "test.ping", "value": "other"})
    assert (await communicator.receive_output())["value"] == "other"
    communicator.stop()


async def is_group_member(layer: Any, group: str, channel: str) -> bool:
    """Whether a message sent to `group` reaches `channel` (waiting briefly for it)."""
    await layer.group_send(group, {"type": "test.probe"})
    try:
        async with asyncio.timeout(0.05):
            await layer.receive(channel)
    except TimeoutError:
        return False
    return True


class Member(Echo):
    async def test_join(self, message: Any) -> None:
        await self.join_groups(["room"])
        await self.send({"type": "test.joined", "channel": self.channel_name})

    async def test_fail(self, message: Any) -> None:
        raise RuntimeError("boom")


async def test_join_groups_adds_the_consumer_channel_to_the_group(layer: Any) -> None:
    communicator = communicator_for(Member.as_asgi())
    await communicator.send_input({"type": "test.join"})
    await communicator.receive_output()
    await layer.group_send("room", {"type": "test.ping", "value": "to the room"})
    assert (await communicator.receive_output())["value"] == "to the room"
    communicator.stop()


async def test_joined_groups_are_left_when_the_consumer_stops(layer: Any) -> None:
    communicator = communicator_for(Member.as_asgi())
    await communicator.send_input({"type": "test.join"})
    channel = (await communicator.receive_output())["channel"]
    await communicator.send_input({"type": "test.stop"})
    await communicator.wait()
    assert not await is_group_member(layer, "room", channel)


async def test_joined_groups_are_left_when_a_handler_fails(layer: Any) -> None:
    communicator = communicator_for(Member.as_asgi())
    await communicator.send_input({"type": "test.join"})
    channel = (await communicator.receive_output())["channel"]
    await communicator.send_input({"type": "test.fail"})
    with pytest.raises(RuntimeError, match="boom"):
        await communicator.wait()
    assert not await is_group_member(layer, "room", channel)


class LayerThatFailsToDiscard(InMemoryChannelLayer):
    """The in-memory layer, unreachable when a consumer leaves its groups."""

    async def group_discard(self, group: str, channel: str) -> None:
        raise ConnectionError("layer unreachable")


async def test_a_layer_failing_at_exit_does_not_crash_the_consumer(
    settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": f"{__name__}.LayerThatFailsToDiscard"},
    }
    communicator = communicator_for(Member.as_asgi())
    await communicator.send_input({"type": "test.join"})
    await communicator.receive_output()
    await communicator.send_input({"type": "test.stop"})
    await communicator.wait()
    assert communicator.future.exception() is None
    assert "could not leave groups ['room']" in caplog.text


@pytest.mark.usefixtures("no_layer")
async def test_joining_groups_without_a_layer_raises_invalid_channel_layer_error() -> None:
    class Member(Echo):
        async def test_join(self, message: Any) -> None:
            await self.join_groups(["room"])

    communicator = communicator_for(Member.as_asgi())
    await communicator.send_input({"type": "test.join"})
    with pytest.raises(InvalidChannelLayerError, match="groups"):
        await communicator.wait()


# SyncConsumer ------------------------------------------------------------------------------------
# Sync handlers close stale database connections around each call, so their tests allow the DB.


@pytest.mark.django_db
@pytest.mark.usefixtures("no_layer")
async def test_sync_consumer_runs_handlers_outside_the_event_loop_thread() -> None:
    class ThreadReporter(SyncConsumer):
        def test_where(self, message: Any) -> None:
            self.send({"type": "test.thread", "ident": threading.get_ident()})

    communicator = communicator_for(ThreadReporter.as_asgi())
    await communicator.send_input({"type": "test.where"})
    assert (await communicator.receive_output())["ident"] != threading.get_ident()
    communicator.stop()


@pytest.mark.django_db
@pytest.mark.usefixtures("no_layer")
async def test_sync_consumer_unknown_event_type_raises_value_error() -> None:
    communicator = communicator_for(SyncConsumer.as_asgi())
    await communicator.send_input({"type": "test.nothing"})
    with pytest.raises(ValueError, match=r"No handler for message type test\.nothing"):
        await communicator.wait()


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("no_layer")
async def test_sync_consumer_handlers_may_use_the_orm() -> None:
    class UserCounter(SyncConsumer):
        def test_signup(self, message: Any) -> None:
            get_user_model().objects.create_user(message["name"])
            self.send({"type": "test.users", "count": get_user_model().objects.count()})

    communicator = communicator_for(UserCounter.as_asgi())
    await communicator.send_input({"type": "test.signup", "name": "ann"})
    assert (await communicator.receive_output())["count"] == 1
    communicator.stop()


@pytest.mark.django_db
async def test_sync_consumer_receives_layer_messages(layer: Any) -> None:
    class SyncEcho(SyncConsumer):
        def test_whoami(self, message: Any) -> None:
            self.send({"type": "test.me", "channel": self.channel_name})

        def test_ping(self, message: Any) -> None:
            self.send({"type": "test.pong", "value": message["value"]})

    communicator = communicator_for(SyncEcho.as_asgi())
    channel = await whoami(communicator)
    await layer.send(channel, {"type": "test.ping", "value": 7})
    assert await communicator.receive_output() == {"type": "test.pong", "value": 7}
    communicator.stop()
