"""Filter routing (route, route_class, include) as a specification: which consumer a connection or
a message reaches, with which keyword arguments, and what fails when the routes are built."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import path

from realtime.consumer import AsyncConsumer
from realtime.exceptions import RouteNotFound
from realtime.generic.websocket import AsyncWebsocketConsumer
from realtime.middleware import BaseMiddleware
from realtime.routing import (
    ChannelNameRouter,
    FilterRouter,
    ProtocolTypeRouter,
    URLRouter,
    include,
    route,
    route_class,
)
from realtime.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator
from realtime.worker import channel_route_names

# Sync consumers run through database_sync_to_async, which checks the thread's database connection.
pytestmark = [pytest.mark.usefixtures("channel_layer"), pytest.mark.django_db(transaction=True)]


calls: list[tuple[str, dict[str, Any]]] = []


@pytest.fixture(autouse=True)
def _clear_calls() -> None:
    calls.clear()


def recorder(label: str) -> Any:
    def consumer(message: Any, **kwargs: Any) -> None:
        calls.append((label, kwargs))
        if message.content["type"] == "websocket.connect":
            message.reply_channel.send({"accept": True})

    consumer.__qualname__ = label
    return consumer


async def connect(application: Any, url: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, url)
    connected, _ = await communicator.connect()
    assert connected
    return communicator


# Matching -----------------------------------------------------------------------------------------


async def test_first_route_whose_every_filter_matches_wins() -> None:
    routes = [
        route("websocket.connect", recorder("admin"), path=r"^/chat/admin/$"),
        route("websocket.connect", recorder("public"), path=r"^/chat/"),
        route("websocket.connect", recorder("other"), path=r"^/chat/lobby/$"),
    ]
    await connect(routes, "/chat/lobby/")
    assert calls == [("public", {})]


async def test_named_groups_become_keyword_arguments() -> None:
    routes = [route("websocket.connect", recorder("room"), path=r"^/chat/(?P<room>[a-z]+)/$")]
    await connect(routes, "/chat/lobby/")
    assert calls == [("room", {"room": "lobby"})]


async def test_all_filters_must_match_including_query_string_bytes() -> None:
    routes = [
        route("websocket.connect", recorder("beta"), path=r"^/chat/$", query_string=r"beta=1"),
        route("websocket.connect", recorder("plain"), path=r"^/chat/$"),
    ]
    await connect(routes, "/chat/?beta=1")
    await connect(routes, "/chat/?beta=0")
    assert [label for label, _ in calls] == ["beta", "plain"]


async def test_filters_on_the_message_pick_the_consumer_per_message() -> None:
    routes = [
        route("websocket.receive", recorder("command"), text=r"^/(?P<command>\w+)"),
        route("websocket.receive", recorder("chat")),
    ]
    communicator = await connect(routes, "/chat/")
    await communicator.send_to(text_data="/nick bob")
    await communicator.send_to(text_data="hello")
    await communicator.disconnect()
    assert calls == [("command", {"command": "nick"}), ("chat", {})]


async def test_include_strips_what_its_filter_matched() -> None:
    inner = [route("websocket.connect", recorder("stream"), path=r"^/stream/$")]
    await connect([include(inner, path=r"^/liveblog")], "/liveblog/stream/")
    assert calls == [("stream", {})]


async def test_include_merges_captures_and_the_inner_route_wins_a_clash() -> None:
    inner = [route("websocket.connect", recorder("post"), path=r"^/(?P<slug>[^/]+)/$")]
    outer = [include(inner, path=r"^/blog/(?P<blog>\w+)(?P<slug>)")]
    await connect(outer, "/blog/news/first-post/")
    assert calls == [("post", {"blog": "news", "slug": "first-post"})]


async def test_include_takes_a_dotted_path_to_a_list_or_a_module(monkeypatch: Any) -> None:
    module = types.ModuleType("blog_includes_for_test")
    module.channel_routing = [route("websocket.connect", recorder("stream"), path=r"^/stream/$")]  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "blog_includes_for_test", module)
    await connect([include("blog_includes_for_test", path=r"^/a")], "/a/stream/")
    await connect([include("blog_includes_for_test.channel_routing", path=r"^/b")], "/b/stream/")
    assert [label for label, _ in calls] == ["stream", "stream"]


async def test_route_class_gets_the_whole_connection_with_its_captures() -> None:
    class Room(AsyncWebsocketConsumer):
        async def connect(self) -> None:
            await self.accept()
            await self.send(text_data=self.scope["url_route"]["kwargs"]["room"])

    routes = [
        route_class(Room, path=r"^/room/(?P<room>\w+)/$"),
        route("websocket.connect", recorder("fallback")),
    ]
    communicator = await connect(routes, "/room/lobby/")
    assert await communicator.receive_from() == "lobby"
    await communicator.disconnect()
    assert calls == []


async def test_a_websocket_route_class_never_takes_http() -> None:
    class Room(AsyncWebsocketConsumer):
        pass

    routes = [route_class(Room), route("http.request", recorder("page"))]
    communicator = HttpCommunicator(routes, "GET", "/room/")
    await communicator.send_request()
    await communicator.receive_nothing()
    assert calls == [("page", {})]


async def test_routes_behind_a_url_router_see_the_remaining_path() -> None:
    inner = FilterRouter([route("websocket.connect", recorder("chat"), path=r"^/chat/$")])
    await connect(URLRouter([path("ws/", inner)]), "/ws/chat/")
    assert calls == [("chat", {})]


async def test_a_list_of_routes_works_behind_middleware_and_in_protocol_type_router() -> None:
    class Tag(BaseMiddleware):
        async def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
            return await super().__call__({**scope, "tenant": "acme"}, receive, send)

    routes = [route("websocket.connect", recorder("tenant"), tenant=r"^(?P<tenant>acme)$")]
    await connect(ProtocolTypeRouter({"websocket": Tag(routes)}), "/")
    assert calls == [("tenant", {"tenant": "acme"})]


async def test_custom_protocol_routes_on_its_own_keys() -> None:
    received: list[tuple[str, dict[str, Any]]] = []

    def reply(message: Any, **kwargs: Any) -> None:
        received.append((message.content["subject"], kwargs))

    routes = [route("email.receive", reply, to_address=r"^(?P<user>\w+)@example\.com$")]
    communicator = ApplicationCommunicator(ProtocolTypeRouter({"email": routes}), {"type": "email"})
    await communicator.send_input(
        {"type": "email.receive", "to_address": "ann@example.com", "subject": "hi"}
    )
    await communicator.receive_nothing()
    assert received == [("hi", {"user": "ann"})]


async def test_worker_channel_routes_by_channel_name_and_are_listed_for_runworker() -> None:
    routes = [route("thumbnails-generate", recorder("generate"))]
    application = ProtocolTypeRouter({"channel": routes})
    assert channel_route_names(application) == ["thumbnails-generate"]
    communicator = ApplicationCommunicator(
        application, {"type": "channel", "channel": "thumbnails-generate"}
    )
    await communicator.send_input({"type": "thumbnails.generate", "id": 3})
    await communicator.receive_nothing()
    assert calls == [("generate", {})]


def test_custom_routing_objects_take_part() -> None:
    class Everything:
        def match(self, message: Any) -> Any:
            return recorder("anything"), {}

        def channel_names(self) -> set[str]:
            return {"anything"}

    router = FilterRouter([Everything()])
    assert router.channel_names() == {"anything"}


# No match -----------------------------------------------------------------------------------------


async def test_no_route_for_the_connection_names_it_and_what_was_tried() -> None:
    routes = [route("websocket.connect", recorder("chat"), path=r"^/chat/$")]
    communicator = WebsocketCommunicator(routes, "/nowhere/")
    await communicator.send_input({"type": "websocket.connect"})
    with pytest.raises(RouteNotFound) as error:
        await communicator.receive_output()
    assert "'/nowhere/'" in str(error.value)
    assert "route('websocket.connect', chat, path='^/chat/$')" in str(error.value)


async def test_no_route_for_a_message_names_the_message_and_is_a_value_error() -> None:
    routes = [route("websocket.connect", recorder("chat"))]
    communicator = await connect(routes, "/chat/")
    await communicator.send_to(text_data="hi")
    with pytest.raises(ValueError, match=r"No route matched websocket\.receive on"):
        await communicator.receive_output()


async def test_without_a_connect_route_the_socket_is_accepted_as_in_channels_1() -> None:
    routes = [route("websocket.receive", recorder("echo"))]
    communicator = await connect(routes, "/")
    await communicator.send_to(text_data="hi")
    await communicator.disconnect()
    assert calls == [("echo", {})]


# Checks when the routes are built ---------------------------------------------------------------


def test_a_bad_regular_expression_fails_at_construction() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"path='\^/\(chat' is not a valid regular"):
        route("websocket.connect", recorder("x"), path=r"^/(chat")


def test_a_filter_value_that_is_not_a_pattern_fails() -> None:
    with pytest.raises(ImproperlyConfigured, match=r"order=1 must be a regular expression"):
        route("websocket.receive", recorder("x"), order=1)


def test_a_filter_on_a_key_the_message_never_has_fails_saying_what_it_has() -> None:
    with pytest.raises(ImproperlyConfigured) as error:
        route("websocket.connect", recorder("x"), method=r"^GET$")
    assert "'method', which websocket.connect messages never have" in str(error.value)
    assert "'path'" in str(error.value)
    with pytest.raises(ImproperlyConfigured, match=r"'text', which websocket\.connect"):
        route("websocket.connect", recorder("x"), text=r"^hi")
    with pytest.raises(ImproperlyConfigured, match="'text', which websocket connection scopes"):

        class Room(AsyncWebsocketConsumer):
            pass

        route_class(Room, text=r"^hi")


def test_keys_a_protocol_or_middleware_adds_are_allowed() -> None:
    route("websocket.connect", recorder("x"), tenant=r"^acme$", user=r"^ann$")
    route("email.receive", recorder("x"), to_address=r".*@example.com$", subject="^reply")


def test_a_class_given_to_route_fails_saying_to_use_route_class() -> None:
    class Chat(AsyncConsumer):
        pass

    with pytest.raises(ImproperlyConfigured, match=r"Write route_class\(.*Chat, \.\.\.\)"):
        route("websocket.connect", Chat)


def test_a_consumer_that_does_not_take_a_captured_keyword_fails() -> None:
    def connect_blog(message: Any) -> None:
        pass

    with pytest.raises(ImproperlyConfigured) as error:
        route("websocket.connect", connect_blog, path=r"^/liveblog/(?P<slug>[^/]+)/$")
    assert "does not take the keyword argument 'slug'" in str(error.value)
    assert "def connect_blog(message, slug, ...)" in str(error.value)


def test_a_consumer_needing_an_argument_no_filter_captures_fails() -> None:
    def connect_blog(message: Any, slug: str) -> None:
        pass

    with pytest.raises(ImproperlyConfigured, match="connect_blog\\(\\) needs slug"):
        FilterRouter([route("websocket.connect", connect_blog)])
    # An include() around it may capture it.
    inner = [route("websocket.connect", connect_blog)]
    FilterRouter([include(inner, path=r"^/(?P<slug>\w+)")])


def test_an_asgi_application_given_to_route_gets_a_hint() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        pass

    with pytest.raises(ImproperlyConfigured, match=r"route it with route_class\(app, \.\.\.\)"):
        FilterRouter([route("websocket.connect", app)])


def test_entries_that_are_not_routes_fail_naming_the_entry() -> None:
    def consumer(message: Any) -> None:
        pass

    with pytest.raises(ImproperlyConfigured, match=r"entry 1 is .*wrap it: route\('<channel>'"):
        FilterRouter([route("websocket.connect", consumer), consumer])
    with pytest.raises(
        ImproperlyConfigured, match="Django's path\\(\\)/re_path\\(\\) go in a URLRouter"
    ):
        FilterRouter([route("websocket.connect", consumer), path("x/", consumer)])


def test_include_of_something_that_is_not_a_list_fails() -> None:
    with pytest.raises(ImproperlyConfigured, match="needs a list of route"):
        include(route("websocket.connect", recorder("x")))
    with pytest.raises(ImproperlyConfigured, match="no module or list of routes by that name"):
        include("realtime.routing.no_such_routes")


def test_channel_name_router_accepts_a_list_of_routes_per_channel() -> None:
    router = ChannelNameRouter({"mail": [route("mail", recorder("mail"))]})
    assert isinstance(router.application_mapping["mail"], FilterRouter)


async def test_no_route_error_names_the_routes_inside_an_include() -> None:
    inner = [route("websocket.connect", recorder("stream"), path=r"^/stream/$")]
    communicator = WebsocketCommunicator([include(inner, path=r"^/liveblog")], "/liveblog/x/")
    await communicator.send_input({"type": "websocket.connect"})
    with pytest.raises(RouteNotFound) as error:
        await communicator.receive_output()
    assert "include([...], path='^/liveblog') -> [route('websocket.connect', stream" in str(
        error.value
    )
