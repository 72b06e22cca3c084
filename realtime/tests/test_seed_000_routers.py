"""Seed 000, "Channels Routing: ProtocolTypeRouter, URLRouter and ChannelNameRouter": every code
example, with `channels` replaced by `realtime` and `url()` by `re_path()`, run through the
communicators, asserting what the text says happens.

The seed's first example lost its `URLRouter([` ... `])` and closing brackets in extraction; it is
read as the Channels 2 document writes it. `LongPollConsumer`, `some_app` and `some_other_app`
are the reader's own applications, written here as small consumers.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.urls import path, re_path

from aprs_news import protocol
from aprs_news.consumers import APRSNewsConsumer
from aprs_news.models import NewsItem
from aprs_news.tests.conftest import sample_packet
from chat.consumers import AdminChatConsumer, PublicChatConsumer
from realtime.auth import AuthMiddlewareStack
from realtime.consumer import AsyncConsumer
from realtime.db import database_sync_to_async
from realtime.generic.http import AsyncHttpConsumer
from realtime.http import AsgiHandler
from realtime.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter, find_router
from realtime.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:realtime.http.AsgiHandler is deprecated"),
    pytest.mark.usefixtures("channel_layer"),
]


def seed_application() -> Any:
    # The seed's routing.py, as written (consumer classes routed directly, Channels 2 style).
    return ProtocolTypeRouter(
        {
            # WebSocket chat handler
            "websocket": AuthMiddlewareStack(
                URLRouter(
                    [
                        re_path(r"^chat/admin/$", AdminChatConsumer),
                        re_path(r"^chat/$", PublicChatConsumer),
                    ]
                )
            ),
            # Using the third-party project frequensgi, which provides an APRS protocol
            "aprs": APRSNewsConsumer,
        }
    )


def test_the_routing_example_sends_each_path_to_its_chat_consumer() -> None:
    router = find_router(seed_application().application_mapping["websocket"])
    assert router is not None
    admin = router.matching_route("/chat/admin/")
    public = router.matching_route("/chat/")
    assert admin is not None and admin.callback is AdminChatConsumer  # type: ignore[union-attr]
    assert public is not None and public.callback is PublicChatConsumer  # type: ignore[union-attr]
    assert router.matching_route("/elsewhere/") is None


async def test_the_admin_chat_route_reaches_the_admin_consumer_through_auth() -> None:
    communicator = WebsocketCommunicator(seed_application(), "/chat/admin/")
    await communicator.send_input({"type": "websocket.connect"})
    # The admin console answers an anonymous visitor itself (it is not a routing error).
    first = await communicator.receive_output(timeout=5)
    assert first["type"] in {"websocket.accept", "websocket.close"}


async def test_the_aprs_protocol_is_served_by_the_aprs_news_consumer() -> None:
    scope = {"type": "aprs", "server": "127.0.0.1:14580", "callsign": "N0CALL", "filter": ""}
    feed = ApplicationCommunicator(seed_application(), scope)
    await feed.send_input({"type": protocol.EVENT_CONNECT})
    bulletin = sample_packet("::BLN1     :Eastern MA")
    await feed.send_input({"type": protocol.EVENT_PACKET, "raw": bulletin, "received": time.time()})
    await feed.send_input({"type": protocol.EVENT_DISCONNECT})
    await feed.wait(timeout=5)
    items = await database_sync_to_async(list)(NewsItem.objects.values_list("kind", "addressee"))
    assert items == [(NewsItem.Kind.BULLETIN, "BLN1")]


class Named(AsyncConsumer):
    """Answers an HTTP request or a channel message with its own name, so a test sees who ran."""

    name = ""

    async def http_request(self, message: dict) -> None:
        await self.send({"type": "http.response.start", "status": 200})
        await self.send({"type": "http.response.body", "body": self.name.encode()})

    async def websocket_connect(self, message: dict) -> None:
        await self.send({"type": "websocket.accept", "subprotocol": self.name})

    async def thumbnails_work(self, message: dict) -> None:
        ran.append(self.name)


ran: list[str] = []
some_app = Named.as_asgi(name="some_app")
some_other_app = Named.as_asgi(name="some_other_app")


async def test_protocol_type_router_dispatches_on_the_scope_type() -> None:
    application = ProtocolTypeRouter({"http": some_app, "websocket": some_other_app})
    response = await HttpCommunicator(application, "GET", "/").get_response()
    assert response["body"] == b"some_app"
    assert await WebsocketCommunicator(application, "/").connect() == (True, "some_other_app")


async def test_without_an_http_entry_django_views_answer_http() -> None:
    application = ProtocolTypeRouter({"websocket": some_other_app})
    response = await HttpCommunicator(application, "GET", "/no-such-page/").get_response(timeout=30)
    assert response["status"] == 404  # Django's 404 page: the view system answered


class LongPollConsumer(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        stream = self.scope["url_route"]["kwargs"].get("stream", "-")
        await self.send_response(200, stream.encode())


def long_poll_router() -> URLRouter:
    # The seed's split between long-poll handlers and Django views, AsgiHandler last.
    return URLRouter(
        [
            re_path(r"^longpoll/$", LongPollConsumer),
            re_path(r"^notifications/(?P<stream>\w+)/$", LongPollConsumer),
            re_path(r"", AsgiHandler),
        ]
    )


async def test_url_router_gives_named_groups_in_url_route_and_falls_back_to_django() -> None:
    response = await HttpCommunicator(
        long_poll_router(), "GET", "/notifications/news/"
    ).get_response()
    assert response["body"] == b"news"
    response = await HttpCommunicator(long_poll_router(), "GET", "/longpoll/").get_response()
    assert response["body"] == b"-"
    response = await HttpCommunicator(long_poll_router(), "GET", "/anything/").get_response(
        timeout=30
    )
    assert response["status"] == 404  # AsgiHandler: Django answered


async def test_positional_groups_are_args_and_dropped_once_a_named_group_matches() -> None:
    seen: list[dict] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["url_route"])

    router = URLRouter([re_path(r"^a/(\d+)/$", app), re_path(r"^b/(\d+)/(?P<stream>\w+)/$", app)])
    await router({"type": "http", "path": "/a/5/"}, None, None)  # type: ignore[arg-type]
    await router({"type": "http", "path": "/b/5/news/"}, None, None)  # type: ignore[arg-type]
    assert seen == [
        {"args": ("5",), "kwargs": {}},
        {"args": (), "kwargs": {"stream": "news"}},
    ]


async def test_channel_name_router_dispatches_on_the_channel_key() -> None:
    ran.clear()
    router = ChannelNameRouter(
        {"thumbnails-generate": some_app, "thunbnails-delete": some_other_app}
    )
    for channel in ("thunbnails-delete", "thumbnails-generate"):
        communicator = ApplicationCommunicator(router, {"type": "channel", "channel": channel})
        await communicator.send_input({"type": "thumbnails.work"})
        await communicator.receive_nothing()
    assert ran == ["some_other_app", "some_app"]


async def test_nesting_with_path_through_middleware_works_here() -> None:
    # The seed warns that this does not work in Channels; here it does.
    inner = URLRouter([path("echo/", some_other_app)])
    application = URLRouter([path("ws/", AuthMiddlewareStack(inner))])
    assert await WebsocketCommunicator(application, "/ws/echo/").connect() == (
        True,
        "some_other_app",
    )
