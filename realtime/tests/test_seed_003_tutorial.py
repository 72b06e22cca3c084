"""Seed 003, the Django Channels tutorial: its routing example (`channels` -> `realtime`), its
chatbot description of scopes and events, and what it says a channel layer offers, run through
the communicators.

`consumers.AsyncChatConsumer` is the reader's own consumer, written here; the seed's routing lost
its `URLRouter([` ... `])` in extraction.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core.asgi import get_asgi_application
from django.urls import re_path

from realtime.auth import AuthMiddlewareStack
from realtime.consumer import AsyncConsumer, SyncConsumer
from realtime.generic.websocket import AsyncWebsocketConsumer
from realtime.layers import Channel, Group, get_channel_layer
from realtime.routing import ProtocolTypeRouter, URLRouter, route
from realtime.testing import ApplicationCommunicator, WebsocketCommunicator

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("channel_layer")]


class consumers:  # the reader's consumers module
    class AsyncChatConsumer(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            user = self.scope["user"]
            await self.send(text_data=f"{self.scope['url_route']['args']} {user.is_authenticated}")

        async def chat_message(self, event: dict) -> None:
            await self.send(text_data=event["text"])


def tutorial_application() -> ProtocolTypeRouter:
    return ProtocolTypeRouter(
        {
            "http": get_asgi_application(),
            "websocket": AuthMiddlewareStack(
                URLRouter([re_path(r"^front(end)/$", consumers.AsyncChatConsumer.as_asgi())])
            ),
        }
    )


async def test_the_routing_example_reaches_the_consumer_with_auth_around_it() -> None:
    communicator = WebsocketCommunicator(tutorial_application(), "/frontend/")
    assert (await communicator.connect())[0]
    # The unnamed group is a positional arg; AuthMiddlewareStack gave the consumer a user.
    assert await communicator.receive_from() == "('end',) False"
    await communicator.disconnect()


# Scopes and events: the chatbot ----------------------------------------------------------------


CHAT_SCOPE = {"type": "chat", "username": "ann", "name": "Ann", "user_id": 7}


class ChatBot(AsyncConsumer):
    """One scope per user; a chat.received_message event may be answered with any number of
    chat.send_message events."""

    async def chat_received_message(self, event: dict) -> None:
        for line in (f"hi {self.scope['name']}", f"you said {event['text']!r}"):
            await self.send({"type": "chat.send_message", "text": line})


async def test_a_scope_lives_across_its_events_and_each_event_may_get_several_replies() -> None:
    communicator = ApplicationCommunicator(ChatBot.as_asgi(), dict(CHAT_SCOPE))
    for text in ("one", "two"):
        await communicator.send_input({"type": "chat.received_message", "text": text})
    replies = [(await communicator.receive_output())["text"] for _ in range(4)]
    assert replies == ["hi Ann", "you said 'one'", "hi Ann", "you said 'two'"]


async def test_the_chatbot_as_a_message_consumer_routed_on_its_event() -> None:
    def received(message: Any) -> None:
        message.reply_channel.send({"type": "chat.send_message", "text": message["text"].upper()})

    routes = [route("chat.received_message", received, username=r"^ann$")]
    communicator = ApplicationCommunicator(ProtocolTypeRouter({"chat": routes}), dict(CHAT_SCOPE))
    await communicator.send_input({"type": "chat.received_message", "text": "hello"})
    assert await communicator.receive_output() == {"type": "chat.send_message", "text": "HELLO"}


async def test_consumers_may_be_synchronous_or_asynchronous() -> None:
    class SyncBot(SyncConsumer):
        def chat_received_message(self, event: dict) -> None:
            self.send({"type": "chat.send_message", "text": "sync"})

    communicator = ApplicationCommunicator(SyncBot.as_asgi(), dict(CHAT_SCOPE))
    await communicator.send_input({"type": "chat.received_message", "text": "x"})
    assert await communicator.receive_output() == {"type": "chat.send_message", "text": "sync"}


# The channel layer --------------------------------------------------------------------------------


class Mailbox(AsyncWebsocketConsumer):
    """Tells its client its channel name, and passes on what is sent to that channel."""

    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data=self.channel_name)

    async def chat_message(self, event: dict) -> None:
        await self.send(text_data=event["text"])


async def test_every_consumer_instance_gets_its_own_channel_name_anyone_can_send_to() -> None:
    first = WebsocketCommunicator(Mailbox.as_asgi(), "/")
    second = WebsocketCommunicator(Mailbox.as_asgi(), "/")
    names = []
    for communicator in (first, second):
        await communicator.connect()
        names.append(await communicator.receive_from())
    assert names[0] != names[1]
    # Anyone who has the name of a channel can send a message to it.
    await Channel(names[0]).send({"type": "chat.message", "text": "just you"})
    assert await first.receive_from() == "just you"
    assert await second.receive_nothing()
    for communicator in (first, second):
        await communicator.disconnect()


async def test_a_group_is_joined_and_left_by_name_and_sends_to_all_its_channels() -> None:
    layer = get_channel_layer()
    a, b = await layer.new_channel(), await layer.new_channel()
    await Group("tutorial").add(a)
    await Group("tutorial").add(Channel(b))
    await Group("tutorial").send({"type": "chat.message", "text": "all"})
    assert [await layer.receive(a), await layer.receive(b)] == [
        {"type": "chat.message", "text": "all"}
    ] * 2
    await Group("tutorial").discard(a)
    await Group("tutorial").send({"type": "chat.message", "text": "b only"})
    assert (await layer.receive(b))["text"] == "b only"
    assert not hasattr(layer, "group_channels")  # no way to enumerate a group's channels
