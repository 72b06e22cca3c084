"""Seed 001, Channels 1.x "Routing": every code example, with `channels` replaced by `realtime`,
run through the communicators, asserting what the text says happens.

The seed's `path=r'^/liveblog/(?P[^/]+)/stream/$'` lost its group name in extraction; as written
it is not a regular expression (the routes refuse it when built, saying so), and the text's
meaning, a captured keyword, is `(?P<slug>[^/]+)`. `consumers.ws_connect`, `comment_response` and
`connect_blog` are the reader's own consumers, written here.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from realtime.exceptions import RouteNotFound
from realtime.generic.websocket import AsyncWebsocketConsumer
from realtime.routing import FilterRouter, ProtocolTypeRouter, include, route, route_class
from realtime.testing import ApplicationCommunicator, WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)  # sync consumers run in a database thread

calls: list[tuple[str, dict[str, Any]]] = []


@pytest.fixture(autouse=True)
def fresh_state(channel_layer: Any) -> None:
    calls.clear()


class consumers:  # the reader's consumers module
    @staticmethod
    def ws_connect(message: Any) -> None:
        calls.append(("ws_connect", {}))
        message.reply_channel.send({"accept": True})


def connect_blog(message: Any, slug: str) -> None:
    calls.append(("connect_blog", {"slug": slug}))
    message.reply_channel.send({"accept": True})


def comment_response(message: Any) -> None:
    calls.append(("comment_response", {"subject": message.content["subject"]}))


async def connected(routes: Any, url: str) -> bool:
    accepted, _ = await WebsocketCommunicator(routes, url).connect()
    return accepted


# Filters ----------------------------------------------------------------------------------------


async def test_path_filter_includes_the_first_slash() -> None:
    routes = [route("websocket.connect", consumers.ws_connect, path=r"^/chat/$")]
    assert await connected(routes, "/chat/")
    assert calls == [("ws_connect", {})]
    # Unlike Django's URL routing the leading slash is part of the path.
    with pytest.raises(ImproperlyConfigured, match="must be a regular expression string"):
        route("websocket.connect", consumers.ws_connect, path=None)


async def send_email(routes: Any, **email: str) -> ApplicationCommunicator:
    communicator = ApplicationCommunicator(ProtocolTypeRouter({"email": routes}), {"type": "email"})
    await communicator.send_input({"type": "email.receive", **email})
    return communicator


async def test_multiple_filters_are_combined_with_and() -> None:
    # imagine email consumers - they would route on domain or recipient address instead
    routes = [
        route("email.receive", comment_response, to_address=r".*@example.com$", subject="^reply")
    ]
    communicator = await send_email(routes, to_address="blog@example.com", subject="reply: yes")
    await communicator.receive_nothing()
    assert calls == [("comment_response", {"subject": "reply: yes"})]
    for email in (
        {"to_address": "blog@example.com", "subject": "hello"},
        {"to_address": "blog@example.org", "subject": "reply: no"},
    ):
        communicator = await send_email(routes, **email)
        with pytest.raises(RouteNotFound, match=r"email\.receive"):
            await communicator.wait()
    assert len(calls) == 1


async def test_filters_capture_keyword_arguments_for_the_consumer() -> None:
    with pytest.raises(ImproperlyConfigured, match="is not a valid regular expression"):
        route("websocket.connect", connect_blog, path=r"^/liveblog/(?P[^/]+)/stream/$")
    routes = [route("websocket.connect", connect_blog, path=r"^/liveblog/(?P<slug>[^/]+)/stream/$")]
    assert await connected(routes, "/liveblog/new-year/stream/")
    assert calls == [("connect_blog", {"slug": "new-year"})]


async def test_filters_on_an_include_by_import_path(monkeypatch: Any) -> None:
    blog_includes = types.ModuleType("blog_includes")
    blog_includes.channel_routing = [  # type: ignore[attr-defined]
        route("websocket.connect", consumers.ws_connect, path=r"^/stream/")
    ]
    monkeypatch.setitem(sys.modules, "blog_includes", blog_includes)
    routing = [include("blog_includes", path=r"^/liveblog")]
    assert await connected(routing, "/liveblog/stream/")
    assert calls == [("ws_connect", {})]


async def test_include_strips_the_part_its_filter_matched() -> None:
    inner_routes = [
        route("websocket.connect", connect_blog, path=r"^/stream/"),
    ]
    routing = [include(inner_routes, path=r"^/liveblog/(?P<slug>[^/]+)")]
    assert await connected(routing, "/liveblog/diary/stream/")
    assert calls == [("connect_blog", {"slug": "diary"})]
    with pytest.raises(RouteNotFound):
        await connected(routing, "/stream/")


async def test_on_a_keyword_clash_the_route_takes_precedence_over_the_include() -> None:
    inner_routes = [route("websocket.connect", connect_blog, path=r"^/(?P<slug>[^/]+)/$")]
    routing = [include(inner_routes, path=r"^/liveblog/(?P<slug>[^/]+)")]
    assert await connected(routing, "/liveblog/outer/inner/")
    assert calls == [("connect_blog", {"slug": "inner"})]


# The routing objects --------------------------------------------------------------------------------


async def test_routes_are_tried_in_order_until_one_matches() -> None:
    routing = [
        route("websocket.connect", connect_blog, path=r"^/liveblog/(?P<slug>[^/]+)/$"),
        route("websocket.connect", consumers.ws_connect),
    ]
    assert await connected(routing, "/liveblog/first/")
    assert await connected(routing, "/chat/")
    assert [name for name, _ in calls] == ["connect_blog", "ws_connect"]


async def test_route_class_takes_a_class_based_consumer() -> None:
    class LiveBlog(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            await self.send(text_data=self.scope["url_route"]["kwargs"]["slug"])

    routing = [route_class(LiveBlog, path=r"^/liveblog/(?P<slug>[^/]+)/$")]
    communicator = WebsocketCommunicator(routing, "/liveblog/diary/")
    assert (await communicator.connect())[0]
    assert await communicator.receive_from() == "diary"
    await communicator.disconnect()


async def test_any_object_with_match_and_channel_names_is_a_route() -> None:
    class EverythingToWsConnect:
        def match(self, message: Any) -> tuple[Any, dict[str, Any]] | None:
            if message.channel.name == "websocket.connect":
                return consumers.ws_connect, {}
            return None

        def channel_names(self) -> set[str]:
            return {"websocket.connect"}

    router = FilterRouter([EverythingToWsConnect(), route("email.receive", comment_response)])
    assert router.channel_names() == {"websocket.connect", "email.receive"}
    assert await connected(router, "/anywhere/")
    assert calls == [("ws_connect", {})]


def test_channel_names_are_what_the_layer_listens_on() -> None:
    routing = FilterRouter(
        [
            route("websocket.connect", consumers.ws_connect),
            include([route("thumbnails-generate", comment_response)], path=r"^/"),
        ]
    )
    assert routing.channel_names() == {"websocket.connect", "thumbnails-generate"}
