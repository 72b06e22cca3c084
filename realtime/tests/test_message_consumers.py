"""Message consumers (functions of one message) and the Channel/Group handles they use, through
the communicators: what the message holds, what the reply shapes do on the socket, when held-back
sends go out, and the handles from sync and async code."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest
from asgiref.sync import async_to_sync

from realtime.exceptions import ConsumeLater, DenyConnection
from realtime.generic.websocket import AsyncWebsocketConsumer
from realtime.layers import Channel, Group, get_channel_layer
from realtime.layers.delivery import content_events
from realtime.routing import route
from realtime.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator

# Sync consumers run through database_sync_to_async, which checks the thread's database connection.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("channel_layer")]


def accept(message: Any) -> None:
    message.reply_channel.send({"accept": True})


# The message ------------------------------------------------------------------------------------


async def test_message_carries_content_channel_reply_channel_and_layer() -> None:
    seen: list[Any] = []

    async def ws_receive(message: Any) -> None:
        seen.append(message)

    routes = [route("websocket.connect", accept), route("websocket.receive", ws_receive)]
    communicator = WebsocketCommunicator(routes, "/chat/?x=1")
    await communicator.connect()
    await communicator.send_to(text_data="hi")
    await communicator.disconnect()
    (message,) = seen
    assert message.content["type"] == "websocket.receive"
    assert message["text"] == "hi"
    assert message.content["path"] == "/chat/"
    assert message.content["query_string"] == b"x=1"
    assert message.content["order"] == 1
    assert message.channel == Channel("websocket.receive")
    assert message.reply_channel.name == message.content["reply_channel"]
    assert message.channel_layer is get_channel_layer()
    with pytest.raises(AttributeError, match="@channel_session decorator"):
        message.channel_session  # noqa: B018


async def test_sync_consumers_run_in_a_thread_and_async_ones_on_the_loop() -> None:
    threads: dict[str, bool] = {}

    def sync_connect(message: Any) -> None:
        threads["sync"] = threading.current_thread() is threading.main_thread()
        message.reply_channel.send({"accept": True})

    async def async_receive(message: Any) -> None:
        threads["async"] = threading.current_thread() is threading.main_thread()

    routes = [route("websocket.connect", sync_connect), route("websocket.receive", async_receive)]
    communicator = WebsocketCommunicator(routes, "/")
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data="x")
    await communicator.disconnect()
    assert threads == {"sync": False, "async": True}


# Reply shapes on a WebSocket ---------------------------------------------------------------------


async def reply_with(*contents: dict[str, Any]) -> WebsocketCommunicator:
    def ws_connect(message: Any) -> None:
        for content in contents:
            message.reply_channel.send(content)

    communicator = WebsocketCommunicator([route("websocket.connect", ws_connect)], "/")
    await communicator.send_input({"type": "websocket.connect"})
    return communicator


async def test_text_and_bytes_replies_are_frames() -> None:
    communicator = await reply_with({"accept": True}, {"text": "hello"}, {"bytes": b"\x00\x01"})
    assert await communicator.receive_output() == {"type": "websocket.accept"}
    assert await communicator.receive_from() == "hello"
    assert await communicator.receive_from() == b"\x00\x01"


async def test_a_frame_before_any_accept_accepts_the_socket_first() -> None:
    communicator = await reply_with({"text": "hello"})
    assert await communicator.receive_output() == {"type": "websocket.accept"}
    assert await communicator.receive_from() == "hello"


@pytest.mark.parametrize(("content", "code"), [({"close": True}, 1000), ({"close": 4003}, 4003)])
async def test_close_replies_close_with_their_code(content: dict[str, Any], code: int) -> None:
    communicator = await reply_with({"accept": True}, content)
    assert await communicator.receive_output() == {"type": "websocket.accept"}
    assert await communicator.receive_output() == {"type": "websocket.close", "code": code}


async def test_accept_false_or_close_before_accepting_refuses_the_handshake() -> None:
    for content in ({"accept": False}, {"close": True}):
        communicator = await reply_with(content)
        assert await communicator.receive_output() == {"type": "websocket.close", "code": 1000}


async def test_deny_connection_in_connect_refuses_the_socket() -> None:
    def ws_connect(message: Any) -> None:
        raise DenyConnection()

    communicator = WebsocketCommunicator([route("websocket.connect", ws_connect)], "/")
    assert await communicator.connect() == (False, 1000)


def test_reply_content_of_unknown_shape_is_refused_naming_it() -> None:
    with pytest.raises(TypeError, match=r"needs a 'type' key .* got \{'txt': 'hi'\}"):
        content_events({"txt": "hi"})
    with pytest.raises(TypeError, match="'close' must be True, False or a close code"):
        content_events({"close": "now"})
    assert content_events({"text": "bye", "close": True}) == [
        {"type": "websocket.send", "text": "bye"},
        {"type": "websocket.close", "code": 1000},
    ]


async def test_http_message_consumers_answer_in_the_1x_response_shape() -> None:
    def page(message: Any, name: str) -> None:
        message.reply_channel.send(
            {"status": 200, "headers": [("content-type", "text/plain")], "content": f"hi {name}"}
        )

    routes = [route("http.request", page, path=r"^/hello/(?P<name>\w+)/$", method="^GET$")]
    response = await HttpCommunicator(routes, "GET", "/hello/ann/").get_response()
    assert response == {
        "status": 200,
        "headers": [(b"content-type", b"text/plain")],
        "body": b"hi ann",
    }


# immediately ------------------------------------------------------------------------------------


async def test_sends_are_held_until_the_consumer_returns_unless_immediately() -> None:
    layer = get_channel_layer()
    watcher = await layer.new_channel()
    observed: dict[str, bool] = {}

    async def arrived() -> bool:
        try:
            await asyncio.wait_for(layer.receive(watcher), 0.05)
        except TimeoutError:
            return False
        return True

    async def ws_connect(message: Any) -> None:
        Channel(watcher).send({"type": "note", "n": 1})
        observed["held"] = not await arrived()
        await Channel(watcher).send({"type": "note", "n": 2}, immediately=True)
        observed["immediate"] = await arrived()
        Channel(watcher).send({"type": "note", "n": 3})
        message.reply_channel.send({"accept": True})

    communicator = WebsocketCommunicator([route("websocket.connect", ws_connect)], "/")
    assert (await communicator.connect())[0]
    assert observed == {"held": True, "immediate": True}
    # The held-back sends went out when the consumer returned, in call order.
    assert [(await layer.receive(watcher))["n"] for _ in range(2)] == [1, 3]


async def test_consume_later_drops_held_back_sends_an_error_does_not() -> None:
    layer = get_channel_layer()
    watcher = await layer.new_channel()
    attempts: list[int] = []

    def generate(message: Any) -> None:
        attempts.append(1)
        Channel(watcher).send({"type": "note", "attempt": len(attempts)})
        if len(attempts) == 1:
            raise ConsumeLater()
        raise RuntimeError("thumbnailer broke")

    application = [route("thumbnails", generate)]
    scope = {"type": "channel", "channel": "thumbnails"}
    first = ApplicationCommunicator(application, scope)
    await first.send_input({"type": "thumbnails.generate"})
    with pytest.raises(ConsumeLater):
        await first.wait()
    second = ApplicationCommunicator(application, scope)
    await second.send_input({"type": "thumbnails.generate"})
    with pytest.raises(RuntimeError, match="thumbnailer broke"):
        await second.wait()
    assert await layer.receive(watcher) == {"type": "note", "attempt": 2}


async def test_worker_message_reply_channel_is_the_one_it_names() -> None:
    layer = get_channel_layer()
    caller = await layer.new_channel()

    def answer(message: Any) -> None:
        message.reply_channel.send({"type": "answer", "to": message.content["question"]})

    communicator = ApplicationCommunicator(
        [route("questions", answer)], {"type": "channel", "channel": "questions"}
    )
    await communicator.send_input({"type": "ask", "question": "q1", "reply_channel": caller})
    assert await asyncio.wait_for(layer.receive(caller), 1) == {"type": "answer", "to": "q1"}


# Channel and Group from sync and async code -------------------------------------------------------


async def test_group_text_reaches_message_consumer_and_class_consumer_sockets_as_frames() -> None:
    class Listener(AsyncWebsocketConsumer):
        groups = ["news"]

        async def connect(self) -> None:
            await self.accept()

    def ws_connect(message: Any) -> None:
        Group("news").add(message.reply_channel)
        message.reply_channel.send({"accept": True})

    by_function = WebsocketCommunicator([route("websocket.connect", ws_connect)], "/")
    by_class = WebsocketCommunicator(Listener.as_asgi(), "/")
    assert (await by_function.connect())[0]
    assert (await by_class.connect())[0]
    await Group("news").send({"text": "extra!"})
    assert await by_function.receive_from() == "extra!"
    assert await by_class.receive_from() == "extra!"
    await Group("news").send({"close": 4000})
    assert await by_function.receive_output() == {"type": "websocket.close", "code": 4000}
    assert await by_class.receive_output() == {"type": "websocket.close", "code": 4000}


async def test_other_layer_events_go_to_the_route_for_their_type() -> None:
    def ws_connect(message: Any) -> None:
        Group("chat").add(message.reply_channel)
        message.reply_channel.send({"accept": True})

    def chat_message(message: Any) -> None:
        message.reply_channel.send({"text": f"{message['user']}: {message['text']}"})

    routes = [route("websocket.connect", ws_connect), route("chat.message", chat_message)]
    communicator = WebsocketCommunicator(routes, "/")
    await communicator.connect()
    await Group("chat").send({"type": "chat.message", "user": "ann", "text": "hi"})
    assert await communicator.receive_from() == "ann: hi"
    await communicator.disconnect()


async def test_groups_a_reply_channel_joined_are_left_when_the_connection_ends() -> None:
    names: list[str] = []

    def ws_connect(message: Any) -> None:
        names.append(message.reply_channel.name)
        Group("news").add(message.reply_channel)
        message.reply_channel.send({"accept": True})

    layer = get_channel_layer()
    communicator = WebsocketCommunicator([route("websocket.connect", ws_connect)], "/")
    await communicator.connect()
    await communicator.disconnect()
    await Group("news").send({"type": "news.item"})
    with pytest.raises(TimeoutError):  # no longer a member: nothing queued for the dead socket
        await asyncio.wait_for(layer.receive(names[0]), 0.1)


async def test_handles_work_from_a_sync_view_thread_without_await() -> None:
    layer = get_channel_layer()
    member = await layer.new_channel()

    def sync_view() -> None:
        Group("room").add(member)
        Group("room").send({"type": "chat.message", "via": "group"})
        Channel(member).send({"type": "chat.message", "via": "channel"})

    await asyncio.to_thread(sync_view)
    assert [(await layer.receive(member))["via"] for _ in range(2)] == ["group", "channel"]


def test_handles_work_with_no_event_loop_at_all() -> None:
    # A management command: no loop anywhere.
    Channel("worker.mail").send({"type": "mail.send"})
    assert async_to_sync(get_channel_layer().receive)("worker.mail") == {"type": "mail.send"}


async def test_a_send_nobody_awaits_still_happens_never_silently_dropped() -> None:
    layer = get_channel_layer()
    member = await layer.new_channel()
    Channel(member).send({"type": "forgotten.await"})  # no await: it runs anyway
    assert await asyncio.wait_for(layer.receive(member), 1) == {"type": "forgotten.await"}


async def test_a_failing_send_nobody_awaits_is_logged(caplog: Any) -> None:
    layer = get_channel_layer()
    operation = Group("room", channel_layer=object()).send({"type": "x"})
    with caplog.at_level(logging.ERROR, logger="realtime.layers.delivery"):
        while not operation.done:
            await asyncio.sleep(0.01)
    assert "Group('room', alias='default').send() failed and nobody awaited it" in caplog.text
    assert layer is not None


async def test_awaited_send_raises_its_error() -> None:
    with pytest.raises(TypeError, match="A message needs a 'type' key"):
        await Channel("x").send({"txt": "hi"})


async def test_strictly_sync_spellings_refuse_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match=r"write `await \.\.\.send\(\.\.\.\)` instead"):
        Group("room").send_sync({"type": "x"})
