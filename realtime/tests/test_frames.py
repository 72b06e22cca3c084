"""The frame intake (realtime.generic.frames), as a specification: what reaches a handler, what is
refused with which error frame, and that nothing runs before accept or after the server's close."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from realtime.generic import frames
from realtime.generic.frames import FrameError, FrameLimits, JsonFrameConsumer, decode_frame
from realtime.generic.websocket import (
    AsyncJsonWebsocketConsumer,
    AsyncWebsocketConsumer,
    JsonWebsocketConsumer,
    WebsocketConsumer,
)
from realtime.layers import get_channel_layer
from realtime.testing import WebsocketCommunicator

MEMORY_LAYER = {"default": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def layer(settings: Any) -> Any:
    settings.CHANNEL_LAYERS = MEMORY_LAYER
    return get_channel_layer()


handled: list[Any] = []


@pytest.fixture(autouse=True)
def clear_handled() -> None:
    handled.clear()


class Echo(JsonFrameConsumer):
    """Takes "echo" (answers) and "slow" (waits for `release`), refuses "fail" with invalid."""

    frame_types = frozenset({"echo", "slow", "fail", "crash"})
    limits = FrameLimits(max_bytes=200, max_depth=4, queue=3, rate=1000.0, burst=1000)
    release: asyncio.Event

    async def connect(self) -> None:
        await self.accept()

    async def handle_echo(self, frame: dict) -> None:
        handled.append(frame)
        await self.send_frame({"type": "echo", "n": frame.get("n")})

    async def handle_slow(self, frame: dict) -> None:
        handled.append(frame)
        await Echo.release.wait()

    async def handle_fail(self, frame: dict) -> None:
        raise FrameError(frames.INVALID, "'n' must be even.")

    async def handle_crash(self, frame: dict) -> None:
        raise RuntimeError("the database went away")


class CloseOnFirstFrame(Echo):
    async def handle_echo(self, frame: dict) -> None:
        handled.append(frame)
        await self.close(4403)


async def connected(consumer: type = Echo) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    connected_, _ = await communicator.connect()
    assert connected_
    return communicator


async def test_frames_are_handled_in_order_by_their_handler() -> None:
    socket = await connected()
    for n in range(3):
        await socket.send_json_to({"type": "echo", "n": n})
    assert [(await socket.receive_json_from())["n"] for _ in range(3)] == [0, 1, 2]
    await socket.disconnect()


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("not json", frames.MALFORMED),
        ("[1]", frames.MALFORMED),
        ('{"n": 1}', frames.MALFORMED),
        ('{"type": 7}', frames.MALFORMED),
        ('{"type": "echo", "n": [[[[1]]]]}', frames.MALFORMED),  # depth 5 > 4
        ('{"type": "echo", "n": 9223372036854775808}', frames.MALFORMED),  # 2**63
        ('{"type": "echo", "n": -9223372036854775808}', frames.MALFORMED),
        ('{"type": "echo", "n": Infinity}', frames.MALFORMED),
        ('{"type": "dance"}', frames.UNKNOWN_TYPE),
        ('{"type": "fail"}', frames.INVALID),
        ('{"type": "crash"}', frames.SERVER_ERROR),
    ],
)
async def test_a_bad_frame_gets_one_error_frame_and_the_socket_stays(text: str, code: str) -> None:
    socket = await connected()
    await socket.send_to(text_data=text)
    error = await socket.receive_json_from()
    assert error["type"] == frames.ERROR
    assert error["code"] == code
    assert isinstance(error["detail"], str) and error["detail"]
    await socket.send_json_to({"type": "echo", "n": 1})
    assert (await socket.receive_json_from())["n"] == 1
    await socket.disconnect()


async def test_largest_allowed_numbers_and_depth_pass() -> None:
    socket = await connected()
    await socket.send_to(text_data='{"type": "echo", "n": [[9223372036854775807]]}')
    assert (await socket.receive_json_from())["n"] == [[2**63 - 1]]
    await socket.disconnect()


async def test_a_binary_frame_is_malformed() -> None:
    socket = await connected()
    await socket.send_to(bytes_data=b'{"type": "echo"}')
    assert (await socket.receive_json_from())["code"] == frames.MALFORMED
    await socket.disconnect()


async def test_deep_nesting_never_raises_recursion_error() -> None:
    with pytest.raises(FrameError) as refused:
        decode_frame('{"type": "x", "a": ' + "[" * 100_000 + "]" * 100_000 + "}", 8)
    assert refused.value.code == frames.MALFORMED


async def test_an_oversized_frame_gets_too_large_and_close_4009_and_nothing_after_runs() -> None:
    socket = await connected()
    await socket.send_to(text_data=json.dumps({"type": "echo", "pad": "x" * 300}))
    await socket.send_json_to({"type": "echo", "n": "after"})
    assert (await socket.receive_json_from())["code"] == frames.TOO_LARGE
    assert await socket.receive_output() == {"type": "websocket.close", "code": 4009}
    assert await socket.receive_nothing()
    assert handled == []


async def test_frames_queued_when_the_server_closes_are_discarded() -> None:
    Echo.release = asyncio.Event()
    socket = await connected(CloseOnFirstFrame)
    await socket.send_json_to({"type": "slow"})
    await socket.send_json_to({"type": "echo", "n": 1})  # closes the socket when handled
    await socket.send_json_to({"type": "echo", "n": 2})  # queued behind it: must never run
    Echo.release.set()
    assert await socket.receive_output() == {"type": "websocket.close", "code": 4403}
    await socket.send_json_to({"type": "echo", "n": 3})  # after the close: must never run
    assert await socket.receive_nothing(0.3)
    assert [f.get("n") for f in handled] == [None, 1]


async def test_frames_sent_before_the_client_left_are_still_handled() -> None:
    Echo.release = asyncio.Event()
    socket = await connected()
    await socket.send_json_to({"type": "slow"})
    await socket.send_json_to({"type": "echo", "n": 1})
    await socket.send_input({"type": "websocket.disconnect", "code": 1001})
    Echo.release.set()
    await socket.wait(2)
    assert [f.get("n") for f in handled] == [None, 1]


async def test_a_full_queue_refuses_with_one_rate_limited_error() -> None:
    Echo.release = asyncio.Event()
    socket = await connected()
    await socket.send_json_to({"type": "slow"})
    await asyncio.sleep(0.05)  # the slow frame is taken off the queue
    for n in range(10):
        await socket.send_json_to({"type": "echo", "n": n})
    error = await socket.receive_json_from()
    assert error["code"] == frames.RATE_LIMITED
    Echo.release.set()
    answered = [(await socket.receive_json_from())["n"] for _ in range(3)]
    assert answered == [0, 1, 2]  # the queue held 3; the other 7 were refused, once
    assert await socket.receive_nothing(0.2)
    await socket.disconnect()


async def test_the_budget_refuses_a_burst_and_refills() -> None:
    class Budgeted(Echo):
        limits = FrameLimits(rate=20.0, burst=2)

    socket = await connected(Budgeted)
    for n in range(5):
        await socket.send_json_to({"type": "echo", "n": n})
    received = [await socket.receive_json_from() for _ in range(3)]
    # The refusal is answered at once, ahead of the answers still being worked on.
    assert [f["n"] for f in received if f["type"] == "echo"] == [0, 1]
    assert [f["code"] for f in received if f["type"] == frames.ERROR] == [frames.RATE_LIMITED]
    assert await socket.receive_nothing(0.2)
    await socket.send_json_to({"type": "echo", "n": 9})  # the budget refilled meanwhile
    assert (await socket.receive_json_from())["n"] == 9
    await socket.disconnect()


async def test_the_budget_of_a_socket_without_its_own_follows_the_setting(settings) -> None:
    """SWITCHBOARD_FRAMES_PER_SECOND: the rate, and bursts of twice as many."""

    class Default(Echo):
        limits = FrameLimits(queue=100)

    settings.REALTIME_FRAMES_PER_SECOND = 2
    socket = await connected(Default)
    for n in range(8):
        await socket.send_json_to({"type": "echo", "n": n})
    received = [await socket.receive_json_from() for _ in range(5)]
    assert [f["n"] for f in received if f["type"] == "echo"] == [0, 1, 2, 3]
    assert [f["code"] for f in received if f["type"] == frames.ERROR] == [frames.RATE_LIMITED]
    assert await socket.receive_nothing(0.2)
    await socket.disconnect()


def test_a_frame_type_without_handler_fails_at_class_creation() -> None:
    with pytest.raises(TypeError, match=r"handle_news_recent"):

        class Broken(JsonFrameConsumer):
            frame_types = frozenset({"news.recent"})


# -- The state machine of every websocket consumer class ------------------------------------------

received: list[Any] = []


class AsyncRefuser(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        await self.close(4403)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        received.append(text_data)


class SyncRefuser(WebsocketConsumer):
    def connect(self) -> None:
        self.accept()
        self.close(4403)

    def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        received.append(text_data)


class AsyncJsonRefuser(AsyncJsonWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()
        await self.close(4403)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        received.append(content)


class SyncJsonRefuser(JsonWebsocketConsumer):
    def connect(self) -> None:
        self.accept()
        self.close(4403)

    def receive_json(self, content: Any, **kwargs: Any) -> None:
        received.append(content)


class FrameRefuser(JsonFrameConsumer):
    frame_types = frozenset({"announce"})

    async def connect(self) -> None:
        await self.accept()
        await self.close(4403)

    async def handle_announce(self, frame: dict) -> None:
        received.append(frame)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "consumer", [AsyncRefuser, SyncRefuser, AsyncJsonRefuser, SyncJsonRefuser, FrameRefuser]
)
async def test_no_consumer_class_dispatches_a_frame_after_it_closed(consumer: type) -> None:
    received.clear()
    socket = WebsocketCommunicator(consumer.as_asgi(), "/ws/")
    await socket.send_input({"type": "websocket.connect"})
    for _ in range(3):
        await socket.send_input({"type": "websocket.receive", "text": '{"type": "announce"}'})
    assert (await socket.receive_output())["type"] == "websocket.accept"
    assert await socket.receive_output() == {"type": "websocket.close", "code": 4403}
    await socket.send_input({"type": "websocket.receive", "text": '{"type": "announce"}'})
    await socket.send_input({"type": "websocket.disconnect", "code": 4403})
    await socket.wait(2)
    assert received == []
