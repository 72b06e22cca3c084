"""Seed 002, the Channels 4 quickstart: its asgi.py, its (commented) ChatConsumer and routing, with
`channels` replaced by `realtime`, run through the communicators.

The seed's inline echo consumer is not valid Python (an `async def` inside a lambda); it is
written here as what it means: accept, then send back every text frame. Its "myproject" settings
module is this project's test settings, already loaded.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.core.asgi import get_asgi_application
from django.urls import path, re_path

from realtime.auth import AuthMiddlewareStack
from realtime.generic.websocket import AsyncWebsocketConsumer
from realtime.routing import ProtocolTypeRouter, URLRouter
from realtime.security.websocket import AllowedHostsOriginValidator
from realtime.testing import HttpCommunicator, WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"origin", b"http://testserver")]


@pytest.fixture(autouse=True)
def quickstart_settings(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "realtime.layers.InMemoryChannelLayer"}}
    settings.ALLOWED_HOSTS = ["testserver"]


# myapp/consumers.py (example consumer)
class ChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        self.room_name = self.scope["url_route"]["kwargs"]["room_name"]
        self.room_group_name = "chat_%s" % self.room_name  # noqa: UP031 (as the seed writes it)
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()

    async def disconnect(self, close_code: int) -> None:
        await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        text_data_json = json.loads(text_data or "")
        message = text_data_json["message"]
        await self.channel_layer.group_send(
            self.room_group_name, {"type": "chat_message", "message": message}
        )

    async def chat_message(self, event: dict) -> None:
        message = event["message"]
        await self.send(text_data=json.dumps({"message": message}))


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """The quickstart's inline echo consumer, as the ASGI application it describes."""
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif event["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            return


# myproject/routing.py
websocket_urlpatterns = [
    re_path(r"ws/chat/(?P<room_name>\w+)/$", ChatConsumer.as_asgi()),
]


def quickstart_application() -> ProtocolTypeRouter:
    # Initialize Django ASGI application early to ensure the AppRegistry
    # is populated before importing code that may import ORM models.
    django_asgi_app = get_asgi_application()
    # Root ASGI application in myproject/asgi.py
    return ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter([path("ws/echo/", echo), *websocket_urlpatterns]))
            ),
        }
    )


async def test_echo_consumer_sends_back_what_it_gets() -> None:
    communicator = WebsocketCommunicator(quickstart_application(), "/ws/echo/", headers=ORIGIN)
    assert (await communicator.connect())[0]
    await communicator.send_to(text_data="ping")
    assert await communicator.receive_from() == "ping"
    await communicator.disconnect()


async def test_chat_consumer_broadcasts_to_everyone_in_the_room_only() -> None:
    application = quickstart_application()
    alice = WebsocketCommunicator(application, "/ws/chat/lobby/", headers=ORIGIN)
    bob = WebsocketCommunicator(application, "/ws/chat/lobby/", headers=ORIGIN)
    carol = WebsocketCommunicator(application, "/ws/chat/kitchen/", headers=ORIGIN)
    for communicator in (alice, bob, carol):
        assert (await communicator.connect())[0]
    await alice.send_json_to({"message": "hello"})
    assert await alice.receive_json_from() == {"message": "hello"}
    assert await bob.receive_json_from() == {"message": "hello"}
    assert await carol.receive_nothing()
    for communicator in (alice, bob, carol):
        await communicator.disconnect()


async def test_other_origins_are_refused_by_the_allowed_hosts_validator() -> None:
    communicator = WebsocketCommunicator(
        quickstart_application(), "/ws/echo/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await communicator.connect()
    assert not connected


async def test_http_goes_to_django() -> None:
    response = await HttpCommunicator(
        quickstart_application(), "GET", "/no-such-page/"
    ).get_response(timeout=30)
    assert response["status"] == 404
