"""The Channels 1.x decorators for message consumers: channel_session, http_session,
channel_and_http_session, the user decorators, allowed_hosts_only and enforce_ordering."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore

from realtime.auth import channel_session_user, channel_session_user_from_http, http_session_user
from realtime.db import database_sync_to_async
from realtime.layers import Channel
from realtime.message import Message
from realtime.routing import route
from realtime.security import AllowedHostsOriginValidator
from realtime.security.websockets import allowed_hosts_only
from realtime.sessions import (
    channel_and_http_session,
    channel_session,
    channel_session_key,
    enforce_ordering,
    http_session,
)
from realtime.testing import ApplicationCommunicator, WebsocketCommunicator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("channel_layer")]


def cookie_for(session_key: str) -> list[tuple[bytes, bytes]]:
    return [(b"cookie", f"{settings.SESSION_COOKIE_NAME}={session_key}".encode())]


@database_sync_to_async
def stored_session(**values: Any) -> str:
    session = SessionStore()
    session.update(values)
    session.create()
    assert session.session_key is not None
    return session.session_key


@database_sync_to_async
def logged_in_session(username: str) -> str:
    user = User.objects.create_user(username, password="pw")
    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.create()
    assert session.session_key is not None
    return session.session_key


@database_sync_to_async
def session_exists(key: str) -> bool:
    return SessionStore().exists(key)


def accept(message: Any) -> None:
    message.reply_channel.send({"accept": True})


# channel_session -----------------------------------------------------------------------------------


async def test_channel_session_lives_across_the_messages_of_one_connection_only() -> None:
    counts: list[int] = []

    @channel_session
    def ws_receive(message: Any) -> None:
        message.channel_session["count"] = message.channel_session.get("count", 0) + 1
        counts.append(message.channel_session["count"])

    routes = [route("websocket.connect", accept), route("websocket.receive", ws_receive)]
    first = WebsocketCommunicator(routes, "/")
    second = WebsocketCommunicator(routes, "/")
    await first.connect()
    await second.connect()
    for communicator in (first, first, second, first):
        await communicator.send_to(text_data="+1")
        await communicator.receive_nothing()
    assert counts == [1, 2, 1, 3]


async def test_channel_session_is_deleted_after_the_disconnect_consumer() -> None:
    keys: list[str] = []

    @channel_session
    async def ws_connect(message: Any) -> None:  # async consumers work too
        message.channel_session["room"] = "lobby"
        keys.append(channel_session_key(message.reply_channel.name))
        # Held back until the consumer returned, so after the session was saved.
        await message.reply_channel.send({"accept": True})

    @channel_session
    def ws_disconnect(message: Any) -> None:
        assert message.channel_session["room"] == "lobby"

    routes = [route("websocket.connect", ws_connect), route("websocket.disconnect", ws_disconnect)]
    communicator = WebsocketCommunicator(routes, "/")
    await communicator.connect()
    assert await session_exists(keys[0])
    await communicator.disconnect()
    assert not await session_exists(keys[0])


async def test_channel_session_is_not_saved_when_the_consumer_raises() -> None:
    keys: list[str] = []

    @channel_session
    def ws_connect(message: Any) -> None:
        keys.append(channel_session_key(message.reply_channel.name))
        message.channel_session["half"] = "done"
        raise RuntimeError("broken")

    communicator = WebsocketCommunicator([route("websocket.connect", ws_connect)], "/")
    await communicator.send_input({"type": "websocket.connect"})
    with pytest.raises(RuntimeError, match="broken"):
        await communicator.receive_output()
    assert not await session_exists(keys[0])


async def test_channel_session_needs_a_reply_channel() -> None:
    @channel_session
    def job(message: Any) -> None:
        pass

    communicator = ApplicationCommunicator(
        [route("jobs", job)], {"type": "channel", "channel": "jobs"}
    )
    await communicator.send_input({"type": "job.run"})
    with pytest.raises(ValueError, match="No reply_channel sent to consumer; @channel_session"):
        await communicator.wait()


# http_session -------------------------------------------------------------------------------------


async def check_http_session(url: str, headers: list[tuple[bytes, bytes]] | None = None) -> Any:
    seen: list[Any] = []

    @http_session
    def ws_connect(message: Any) -> None:
        seen.append(message.http_session)
        message.reply_channel.send({"accept": True})

    communicator = WebsocketCommunicator([route("websocket.connect", ws_connect)], url, headers)
    await communicator.connect()
    return seen[0]


async def test_http_session_comes_from_the_session_cookie() -> None:
    key = await stored_session(colour="green")
    session = await check_http_session("/", cookie_for(key))
    assert session.session_key == key
    assert session["colour"] == "green"


async def test_http_session_also_reads_the_session_key_query_parameter_first() -> None:
    key = await stored_session(colour="blue")
    other = await stored_session(colour="green")
    session = await check_http_session(f"/?session_key={key}", cookie_for(other))
    assert session["colour"] == "blue"


async def test_http_session_is_none_without_a_session_or_for_an_unknown_one() -> None:
    assert await check_http_session("/") is None
    assert await check_http_session("/", cookie_for("no-such-session-key-0123456789")) is None


async def test_channel_and_http_session_keeps_the_http_session_key_in_the_channel_session() -> None:
    key = await stored_session(colour="green")
    seen: list[tuple[str, str]] = []

    @channel_and_http_session
    def ws_receive(message: Any) -> None:
        seen.append(
            (message.channel_session[settings.SESSION_COOKIE_NAME], message.http_session["colour"])
        )

    routes = [route("websocket.connect", accept), route("websocket.receive", ws_receive)]
    communicator = WebsocketCommunicator(routes, "/", headers=cookie_for(key))
    await communicator.connect()
    await communicator.send_to(text_data="x")
    await communicator.disconnect()
    assert seen == [(key, "green")]


async def test_channel_and_http_session_hydrates_the_http_session_from_the_channel_session() -> (
    None
):
    key = await stored_session(colour="green")
    reply = Channel("websocket.reply!abc")

    @channel_and_http_session
    def first(message: Any) -> None:
        pass

    @channel_and_http_session
    def later(message: Any) -> Any:
        return message.http_session["colour"]

    connect = Message(
        {"type": "websocket.connect", "headers": cookie_for(key)}, "websocket.connect", reply
    )
    await database_sync_to_async(first)(connect)
    cookieless = Message({"type": "websocket.receive", "text": "x"}, "websocket.receive", reply)
    assert await database_sync_to_async(later)(cookieless) == "green"


# Users --------------------------------------------------------------------------------------------


async def test_http_session_user_is_the_logged_in_user_or_anonymous() -> None:
    key = await logged_in_session("ann")
    users: list[Any] = []

    @http_session_user
    def ws_connect(message: Any) -> None:
        users.append(message.user)
        message.reply_channel.send({"accept": True})

    for headers in (cookie_for(key), None):
        await WebsocketCommunicator(
            [route("websocket.connect", ws_connect)], "/", headers
        ).connect()
    assert users[0].username == "ann"
    assert not users[1].is_authenticated


async def test_user_from_http_on_connect_is_the_channel_session_user_afterwards() -> None:
    key = await logged_in_session("bob")
    users: list[str] = []

    @channel_session_user_from_http
    def ws_connect(message: Any) -> None:
        users.append(message.user.username)
        message.reply_channel.send({"accept": True})

    @channel_session_user
    def ws_receive(message: Any) -> None:
        users.append(message.user.username)

    routes = [route("websocket.connect", ws_connect), route("websocket.receive", ws_receive)]
    communicator = WebsocketCommunicator(routes, "/", headers=cookie_for(key))
    await communicator.connect()
    await communicator.send_to(text_data="x")
    await communicator.disconnect()
    assert users == ["bob", "bob"]


# allowed_hosts_only ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("origin", "runs"),
    [(b"https://example.com", True), (b"https://evil.example.org", False), (None, False)],
)
async def test_allowed_hosts_only_refuses_other_origins_before_the_consumer_runs(
    settings: Any, origin: bytes | None, runs: bool
) -> None:
    settings.ALLOWED_HOSTS = ["example.com"]
    ran: list[bool] = []

    @allowed_hosts_only
    def ws_connect(message: Any) -> None:
        ran.append(True)
        message.reply_channel.send({"accept": True})

    headers = [(b"origin", origin)] if origin else []
    communicator = WebsocketCommunicator([route("websocket.connect", ws_connect)], "/", headers)
    connected, _ = await communicator.connect()
    assert connected is runs
    assert ran == ([True] if runs else [])


def test_allowed_hosts_only_wraps_a_class_consumer_in_the_validator() -> None:
    from realtime.generic.websocket import AsyncWebsocketConsumer

    class Room(AsyncWebsocketConsumer):
        pass

    assert isinstance(allowed_hosts_only(Room), AllowedHostsOriginValidator)


# enforce_ordering ---------------------------------------------------------------------------------


def ordered_message(order: int, kind: str = "websocket.receive") -> Message:
    return Message({"type": kind, "order": order}, kind, Channel("websocket.reply!order"))


async def test_enforce_ordering_runs_messages_in_order_one_at_a_time() -> None:
    events: list[str] = []

    @enforce_ordering
    async def consumer(message: Any) -> None:
        events.append(f"start {message['order']}")
        await asyncio.sleep(0.01)
        events.append(f"end {message['order']}")

    kinds = ["websocket.connect", "websocket.receive", "websocket.receive"]
    messages = [ordered_message(order, kinds[order]) for order in range(3)]
    await asyncio.gather(*(consumer(messages[order]) for order in (2, 1, 0)))
    assert events == ["start 0", "end 0", "start 1", "end 1", "start 2", "end 2"]


async def test_slight_ordering_only_makes_connect_come_first() -> None:
    events: list[int] = []

    @enforce_ordering(slight=True)
    def consumer(message: Any) -> None:
        events.append(message["order"])

    reply = Channel("websocket.reply!slight")
    messages = [
        Message({"type": "websocket.connect", "order": 0}, "websocket.connect", reply),
        Message({"type": "websocket.receive", "order": 1}, "websocket.receive", reply),
        Message({"type": "websocket.receive", "order": 2}, "websocket.receive", reply),
    ]
    await asyncio.gather(consumer(messages[2]), consumer(messages[0]), consumer(messages[1]))
    assert events[0] == 0
    assert sorted(events) == [0, 1, 2]


async def test_enforce_ordering_needs_an_order() -> None:
    @enforce_ordering
    def consumer(message: Any) -> None:
        pass

    with pytest.raises(ValueError, match="@enforce_ordering requires both"):
        await consumer(Message({"type": "job"}, "jobs", Channel("x")))


async def test_enforce_ordering_on_a_real_connection_sees_every_message_in_order() -> None:
    orders: list[int] = []

    @enforce_ordering
    def ws_any(message: Any) -> None:
        orders.append(message["order"])
        if message["type"] == "websocket.connect":
            message.reply_channel.send({"accept": True})

    routes = [route(kind, ws_any) for kind in ("websocket.connect", "websocket.receive")]
    communicator = WebsocketCommunicator(routes, "/")
    await communicator.connect()
    for text in "abc":
        await communicator.send_to(text_data=text)
    await communicator.disconnect()
    assert orders == [0, 1, 2, 3]


# On class consumers -------------------------------------------------------------------------------


async def test_user_and_http_session_decorators_give_a_class_consumer_the_middleware() -> None:
    from realtime.auth import AuthMiddleware
    from realtime.generic.websocket import AsyncWebsocketConsumer
    from realtime.routing import find_router
    from realtime.sessions import SessionMiddleware

    class WhoAmI(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            await self.send(text_data=self.scope["user"].username or "anonymous")

    key = await logged_in_session("cat")
    for decorator in (http_session_user, channel_session_user, channel_session_user_from_http):
        application = decorator(WhoAmI)
        communicator = WebsocketCommunicator(application, "/", headers=cookie_for(key))
        await communicator.connect()
        assert await communicator.receive_from() == "cat"
        await communicator.disconnect()
    assert isinstance(http_session(WhoAmI).inner, SessionMiddleware)
    assert find_router(http_session_user(WhoAmI)) is None
    assert isinstance(http_session_user(WhoAmI).inner.inner, AuthMiddleware)


def test_channel_session_on_a_class_consumer_says_to_keep_state_on_self() -> None:
    from realtime.generic.websocket import AsyncWebsocketConsumer

    class Room(AsyncWebsocketConsumer):
        pass

    for decorator in (channel_session, channel_and_http_session):
        with pytest.raises(TypeError, match="keep connection state on self"):
            decorator(Room)
    assert enforce_ordering(Room) is Room  # already ordered, one event at a time


async def test_enforce_ordering_on_receive_alone_does_not_wait_for_an_undecorated_connect() -> None:
    orders: list[int] = []

    @enforce_ordering
    def ws_receive(message: Any) -> None:
        orders.append(message["order"])

    routes = [route("websocket.connect", accept), route("websocket.receive", ws_receive)]
    communicator = WebsocketCommunicator(routes, "/")
    await communicator.connect()
    await communicator.send_to(text_data="a")
    await communicator.send_to(text_data="b")
    await communicator.disconnect(timeout=3)
    assert orders == [1, 2]
