"""Per-user caps on open sockets and waiting long-polls, as a specification."""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from realtime.connection_limits import (
    CLOSE_TOO_MANY_CONNECTIONS,
    ConnectionCounter,
    UserSocketLimit,
)
from realtime.generic.http import LongPollConsumer
from realtime.testing import HttpCommunicator, WebsocketCommunicator


def user(pk: int) -> Any:
    return SimpleNamespace(pk=pk, is_authenticated=True)


async def accepting(scope, receive, send):
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while (await receive())["type"] != "websocket.disconnect":
        pass


def with_user(application, pk: int | None):
    async def app(scope, receive, send):
        scope = {**scope, "user": user(pk) if pk else SimpleNamespace(is_authenticated=False)}
        await application(scope, receive, send)

    return app


def test_counter_refuses_past_the_limit_and_frees_on_release():
    counter = ConnectionCounter()
    assert counter.try_acquire("ann", 2) and counter.try_acquire("ann", 2)
    assert not counter.try_acquire("ann", 2)
    assert counter.try_acquire("bob", 2)
    counter.release("ann")
    assert counter.try_acquire("ann", 2)
    assert counter.try_acquire("ann", 0)  # 0: no limit


async def test_socket_over_the_cap_is_accepted_told_why_and_closed_4429(settings):
    settings.REALTIME_MAX_SOCKETS_PER_USER = 1
    application = with_user(UserSocketLimit(accepting, ConnectionCounter()), 7)
    first = WebsocketCommunicator(application, "/ws/")
    assert (await first.connect())[0]
    second = WebsocketCommunicator(application, "/ws/")
    assert (await second.connect())[0]
    frame = json.loads((await second.receive_output())["text"])
    closed = await second.receive_output()
    assert frame["code"] == "too_many_connections"
    assert closed == {
        "type": "websocket.close",
        "code": CLOSE_TOO_MANY_CONNECTIONS,
        "reason": "too many connections",
    }
    await first.disconnect()
    third = WebsocketCommunicator(application, "/ws/")
    assert (await third.connect())[0]  # the first one's place is free again
    await third.disconnect()


async def test_anonymous_sockets_are_not_counted(settings):
    settings.REALTIME_MAX_SOCKETS_PER_USER = 1
    application = with_user(UserSocketLimit(accepting, ConnectionCounter()), None)
    sockets = [WebsocketCommunicator(application, "/ws/") for _ in range(3)]
    for socket in sockets:
        assert (await socket.connect())[0]
    for socket in sockets:
        await socket.disconnect()


class Waiter(LongPollConsumer):
    timeout = 5.0


async def test_a_poll_over_the_cap_is_answered_429_and_the_waiting_ones_go_on(
    settings, channel_layer
):
    settings.REALTIME_MAX_POLLS_PER_USER = 1
    application = with_user(Waiter.as_asgi(), 9)
    waiting = HttpCommunicator(application, "GET", "/poll/")
    await waiting.send_request()
    assert await waiting.receive_nothing(0.1)
    refused = await HttpCommunicator(application, "GET", "/poll/").get_response()
    assert refused["status"] == 429
    assert json.loads(refused["body"])["error"]["code"] == "too_many_polls"
    await waiting.disconnect()
    again = HttpCommunicator(application, "GET", "/poll/")
    await again.send_request()
    assert await again.receive_nothing(0.1)  # the place was freed: this one waits
    await again.disconnect()
