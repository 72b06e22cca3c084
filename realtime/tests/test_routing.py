"""The routers, as a specification: which application a connection reaches, and with what scope."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import include, path, re_path

from realtime.consumer import AsyncConsumer
from realtime.routing import (
    ChannelNameRouter,
    ProtocolTypeRouter,
    ScopeKeyRouter,
    URLRouter,
    get_default_application,
)
from realtime.testing import ApplicationCommunicator, HttpCommunicator

pytestmark = pytest.mark.usefixtures("no_layer")


@pytest.fixture
def no_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}


class Recorder:
    """An ASGI app that remembers the scope it was called with."""

    def __init__(self, name: str = "app") -> None:
        self.name = name
        self.scope: dict[str, Any] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = dict(scope)


class Middleware:
    """Middleware in the house style: keeps the wrapped app in `inner`, adds a scope key."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.inner({**scope, "middleware_ran": True}, receive, send)


class ApplicationWrapper:
    """Middleware that keeps the wrapped app in `application`, as origin validators do."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.application(scope, receive, send)


async def route(application: Any, path_: str, **scope: Any) -> None:
    await application({"type": "websocket", "path": path_, **scope}, None, None)


# ProtocolTypeRouter ------------------------------------------------------------------------------


async def test_protocol_router_picks_application_by_scope_type() -> None:
    websocket, aprs = Recorder(), Recorder()
    router = ProtocolTypeRouter({"websocket": websocket, "aprs": aprs})
    await router({"type": "aprs", "server": "x"}, None, None)
    assert aprs.scope == {"type": "aprs", "server": "x"}
    assert websocket.scope is None


async def test_protocol_router_unknown_type_names_it_and_the_known_types() -> None:
    router = ProtocolTypeRouter({"websocket": Recorder(), "http": Recorder()})
    with pytest.raises(ValueError) as error:
        await router({"type": "aprs"}, None, None)
    assert str(error.value) == (
        "No application configured for scope type 'aprs'; routes exist for ['http', 'websocket']"
    )


@pytest.mark.django_db
async def test_protocol_router_without_http_serves_django_views() -> None:
    router = ProtocolTypeRouter({"websocket": Recorder()})
    communicator = HttpCommunicator(router, "GET", "/no-such-page-at-all/")
    # Django's handler loads its middleware on first use: allow for a slow, busy machine.
    response = await communicator.get_response(timeout=30)
    # Django's own handler answered: its 404 page, not a routing error.
    assert response["status"] == 404


async def test_protocol_router_serves_a_consumer_class_as_its_as_asgi_app() -> None:
    # Channels 2 routed classes directly (seed 000: `"aprs": APRSNewsConsumer`).
    class Feed(AsyncConsumer):
        async def feed_ping(self, event: dict) -> None:
            await self.send({"type": "feed.pong", "scope_type": self.scope["type"]})

    communicator = ApplicationCommunicator(ProtocolTypeRouter({"feed": Feed}), {"type": "feed"})
    await communicator.send_input({"type": "feed.ping"})
    assert await communicator.receive_output() == {"type": "feed.pong", "scope_type": "feed"}


def test_protocol_router_refuses_a_class_that_is_not_a_consumer() -> None:
    class NotAnApp:
        pass

    with pytest.raises(ImproperlyConfigured, match=r"class .*NotAnApp, not an ASGI application"):
        ProtocolTypeRouter({"websocket": NotAnApp})  # type: ignore[dict-item]


async def test_protocol_router_returns_what_the_application_returned() -> None:
    async def answers(scope: Any, receive: Any, send: Any) -> str:
        return "the inner result"

    result = await ProtocolTypeRouter({"feed": answers})({"type": "feed"}, None, None)  # type: ignore[arg-type, dict-item]
    assert result == "the inner result"


# URLRouter ---------------------------------------------------------------------------------------


async def test_url_router_matches_path_without_leading_slash() -> None:
    app = Recorder()
    await route(URLRouter([path("ws/chat/", app)]), "/ws/chat/")
    assert app.scope is not None


async def test_url_router_puts_converted_kwargs_in_url_route() -> None:
    app = Recorder()
    router = URLRouter([path("ws/rooms/<slug:room>/<int:page>/", app)])
    await route(router, "/ws/rooms/lobby/3/")
    assert app.scope["url_route"] == {"args": (), "kwargs": {"room": "lobby", "page": 3}}


async def test_url_router_re_path_named_groups_become_kwargs() -> None:
    app = Recorder()
    await route(URLRouter([re_path(r"^ws/(?P<kind>\w+)/$", app)]), "/ws/news/")
    assert app.scope["url_route"]["kwargs"] == {"kind": "news"}


async def test_url_router_re_path_unnamed_groups_become_args() -> None:
    app = Recorder()
    await route(URLRouter([re_path(r"^ws/(\w+)/(\d+)/$", app)]), "/ws/news/7/")
    assert app.scope["url_route"] == {"args": ("news", "7"), "kwargs": {}}


@pytest.mark.parametrize(
    ("regex", "path_"),
    [
        (r"^ws/chats?/$", "/ws/chat/"),
        (r"^ws/(?:chat|talk)/$", "/ws/talk/"),
        (r"^(?:ws|socket)/$", "/socket/"),
        (r"^ws/x{0,1}y/$", "/ws/y/"),
        (r"^ws\.v1/$", "/ws.v1/"),
        (r"ws/", "/deep/ws/"),
    ],
)
async def test_url_router_re_path_matches_whatever_the_regex_allows(regex: str, path_: str) -> None:
    app = Recorder()
    await route(URLRouter([re_path(regex, app)]), path_)
    assert app.scope is not None


async def test_url_router_adds_route_default_kwargs() -> None:
    app = Recorder()
    await route(URLRouter([path("ws/", app, {"mode": "public"})]), "/ws/")
    assert app.scope["url_route"]["kwargs"] == {"mode": "public"}


async def test_url_router_first_matching_route_wins() -> None:
    first, second = Recorder(), Recorder()
    await route(URLRouter([path("ws/<str:name>/", first), path("ws/x/", second)]), "/ws/x/")
    assert first.scope is not None and second.scope is None


async def test_url_router_path_route_matches_the_whole_path_only() -> None:
    app = Recorder()
    with pytest.raises(ValueError, match="No route found for path 'ws/chat/extra/'"):
        await route(URLRouter([path("ws/chat/", app)]), "/ws/chat/extra/")


async def test_url_router_converter_that_rejects_the_value_does_not_match() -> None:
    with pytest.raises(ValueError, match="No route found for path 'ws/rooms/abc/'"):
        await route(URLRouter([path("ws/rooms/<int:room>/", Recorder())]), "/ws/rooms/abc/")


async def test_url_router_without_match_raises_value_error_naming_the_path() -> None:
    router = URLRouter([path("ws/chat/", Recorder())])
    with pytest.raises(ValueError) as error:
        await route(router, "/ws/nowhere/")
    assert str(error.value) == "No route found for path 'ws/nowhere/'."


async def test_url_router_strips_root_path() -> None:
    app = Recorder()
    await route(URLRouter([path("ws/chat/", app)]), "/prefix/ws/chat/", root_path="/prefix")
    assert app.scope is not None


async def test_url_router_refuses_path_outside_root_path() -> None:
    with pytest.raises(ValueError, match="No route found"):
        await route(URLRouter([path("ws/chat/", Recorder())]), "/ws/chat/", root_path="/prefix")


async def test_url_router_without_path_in_scope_says_so() -> None:
    with pytest.raises(ValueError, match="No 'path' key"):
        await URLRouter([path("ws/", Recorder())])({"type": "websocket"}, None, None)


async def test_url_router_sets_path_remaining_for_the_application() -> None:
    app = Recorder()
    await route(URLRouter([re_path(r"^ws/", app)]), "/ws/chat/lobby/")
    assert app.scope["path_remaining"] == "chat/lobby/"


async def test_url_router_keeps_the_original_path_in_scope() -> None:
    app = Recorder()
    await route(URLRouter([path("ws/", URLRouter([path("chat/", app)]))]), "/ws/chat/")
    assert app.scope["path"] == "/ws/chat/"


async def test_url_router_serves_a_consumer_class_routed_directly() -> None:
    class Chat(AsyncConsumer):
        async def http_request(self, event: dict) -> None:
            room = self.scope["url_route"]["kwargs"]["room"]
            await self.send({"type": "http.response.start", "status": 200})
            await self.send({"type": "http.response.body", "body": room.encode()})

    router = URLRouter([path("chat/<slug:room>/", Chat)])  # type: ignore[list-item]
    response = await HttpCommunicator(router, "GET", "/chat/lobby/").get_response()
    assert response["body"] == b"lobby"


def test_url_router_refuses_a_class_that_is_not_a_consumer_naming_the_route() -> None:
    class NotAnApp:
        pass

    with pytest.raises(ImproperlyConfigured) as error:
        URLRouter([path("ws/chat/", NotAnApp)])  # type: ignore[arg-type]
    assert "'ws/chat/'" in str(error.value)
    assert "NotAnApp" in str(error.value)


async def test_url_router_returns_what_the_application_returned() -> None:
    async def answers(scope: Any, receive: Any, send: Any) -> str:
        return "the inner result"

    router = URLRouter([path("x/", answers)])  # type: ignore[arg-type]
    assert await router({"type": "http", "path": "/x/"}, None, None) == "the inner result"  # type: ignore[arg-type]


# Nesting -----------------------------------------------------------------------------------------


async def test_nested_router_strips_matched_prefix() -> None:
    app = Recorder()
    router = URLRouter([path("ws/", URLRouter([path("chat/", app)]))])
    await route(router, "/ws/chat/")
    assert app.scope["path_remaining"] == ""


async def test_nested_router_with_re_path_prefix() -> None:
    app = Recorder()
    router = URLRouter([re_path(r"^ws/", URLRouter([re_path(r"^chat/$", app)]))])
    await route(router, "/ws/chat/")
    assert app.scope is not None


async def test_nested_router_merges_outer_and_inner_kwargs() -> None:
    app = Recorder()
    inner = URLRouter([path("rooms/<slug:room>/", app)])
    router = URLRouter([path("ws/<slug:tenant>/", inner)])
    await route(router, "/ws/acme/rooms/lobby/")
    assert app.scope["url_route"]["kwargs"] == {"tenant": "acme", "room": "lobby"}


async def test_nested_router_inner_kwargs_win_on_clash() -> None:
    app = Recorder()
    inner = URLRouter([path("<slug:name>/", app)])
    router = URLRouter([path("ws/<slug:name>/", inner)])
    await route(router, "/ws/outer/inner/")
    assert app.scope["url_route"]["kwargs"] == {"name": "inner"}


async def test_nested_router_appends_inner_args_to_outer_args() -> None:
    app = Recorder()
    inner = URLRouter([re_path(r"^(\d+)/$", app)])
    router = URLRouter([re_path(r"^ws/(\w+)/", inner)])
    await route(router, "/ws/news/7/")
    assert app.scope["url_route"]["args"] == ("news", "7")


async def test_nested_router_inside_middleware_works_with_path() -> None:
    app = Recorder()
    router = URLRouter([path("ws/", Middleware(URLRouter([path("chat/<slug:room>/", app)])))])
    await route(router, "/ws/chat/lobby/")
    assert app.scope["middleware_ran"] is True
    assert app.scope["url_route"]["kwargs"] == {"room": "lobby"}


async def test_nested_router_inside_several_middlewares_works() -> None:
    app = Recorder()
    wrapped = ApplicationWrapper(Middleware(URLRouter([path("chat/", app)])))
    await route(URLRouter([path("ws/", wrapped)]), "/ws/chat/")
    assert app.scope["path_remaining"] == ""


async def test_path_routing_marker_declares_a_nested_router_behind_opaque_middleware() -> None:
    app = Recorder()
    inner = URLRouter([path("chat/", app)])

    async def opaque(scope: Any, receive: Any, send: Any) -> None:
        await inner(scope, receive, send)

    opaque._path_routing = True  # type: ignore[attr-defined]
    await route(URLRouter([path("ws/", opaque)]), "/ws/chat/")
    assert app.scope is not None


async def test_nested_router_without_match_lets_outer_router_try_next_route() -> None:
    fallback = Recorder()
    router = URLRouter(
        [
            path("ws/", Middleware(URLRouter([path("chat/", Recorder())]))),
            re_path(r"^ws/", fallback),
        ]
    )
    await route(router, "/ws/news/")
    assert fallback.scope is not None


async def test_miss_behind_opaque_middleware_is_a_value_error_at_the_top() -> None:
    inner = URLRouter([path("chat/", Recorder())])

    async def opaque(scope: Any, receive: Any, send: Any) -> None:
        await inner(scope, receive, send)

    with pytest.raises(ValueError, match="No route found for path 'ws/news/'"):
        await route(URLRouter([re_path(r"^ws/", opaque)]), "/ws/news/")


async def test_nested_router_without_any_match_raises_value_error_at_the_top() -> None:
    router = URLRouter([path("ws/", URLRouter([path("chat/", Recorder())]))])
    with pytest.raises(ValueError, match="No route found for path 'ws/news/'"):
        await route(router, "/ws/news/")


async def test_url_router_accepts_include_of_a_route_list() -> None:
    app = Recorder()
    router = URLRouter([path("ws/<slug:tenant>/", include([path("chat/", app)]))])
    await route(router, "/ws/acme/chat/")
    assert app.scope["url_route"]["kwargs"] == {"tenant": "acme"}


async def test_error_raised_by_a_routed_application_is_not_taken_for_a_miss() -> None:
    class Broken:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            raise ValueError("the application's own error")

    inner = URLRouter([path("chat/", Broken())])
    router = URLRouter([path("ws/", inner), re_path(r"", Recorder())])
    with pytest.raises(ValueError, match="the application's own error"):
        await route(router, "/ws/chat/")


def test_url_router_leaves_the_given_patterns_unchanged() -> None:
    route_ = path("ws/", URLRouter([path("chat/", Recorder())]))
    URLRouter([route_])
    assert route_.pattern._is_endpoint is True


def test_matching_route_names_the_route_a_path_takes_nested_prefixes_included() -> None:
    chat = path("ws/chat/", Recorder())
    admin = path("ws/admin/", Middleware(URLRouter([path("console/", Recorder())])))
    router = URLRouter([chat, admin])
    assert router.matching_route("/ws/admin/console/") is admin
    assert router.matching_route("ws/chat/") is chat
    assert router.matching_route("/ws/elsewhere/") is None


# ChannelNameRouter and ScopeKeyRouter ------------------------------------------------------------


async def test_channel_router_picks_application_by_channel_name() -> None:
    thumbnails = Recorder()
    router = ChannelNameRouter({"thumbnails": thumbnails, "emails": Recorder()})
    await router({"type": "channel", "channel": "thumbnails"}, None, None)
    assert thumbnails.scope == {"type": "channel", "channel": "thumbnails"}


def test_channel_router_lists_its_channel_names() -> None:
    router = ChannelNameRouter({"thumbnails": Recorder(), "emails": Recorder()})
    assert router.channel_names() == ["emails", "thumbnails"]
    assert set(router.application_mapping) == {"emails", "thumbnails"}


async def test_channel_router_unknown_channel_names_it() -> None:
    router = ChannelNameRouter({"emails": Recorder()})
    with pytest.raises(ValueError) as error:
        await router({"type": "channel", "channel": "faxes"}, None, None)
    assert str(error.value) == (
        "No application configured for channel name 'faxes'; routes exist for ['emails']"
    )


async def test_channel_router_without_channel_key_explains() -> None:
    with pytest.raises(ValueError, match="without a 'channel' key"):
        await ChannelNameRouter({"emails": Recorder()})({"type": "websocket"}, None, None)


async def test_scope_key_router_routes_on_any_scope_key() -> None:
    live, replay = Recorder(), Recorder()
    router = ScopeKeyRouter({"rotate.aprs2.net": live}, key="server", default=replay)
    await router({"type": "aprs", "server": "rotate.aprs2.net"}, None, None)
    await router({"type": "aprs", "server": "capture.aprs"}, None, None)
    assert live.scope["server"] == "rotate.aprs2.net"
    assert replay.scope["server"] == "capture.aprs"


async def test_scope_key_router_without_default_names_the_value() -> None:
    router = ScopeKeyRouter({"a": Recorder()}, key="server")
    with pytest.raises(ValueError, match="No application configured for scope server 'b'"):
        await router({"type": "aprs", "server": "b"}, None, None)


async def test_routers_nest_inside_each_other() -> None:
    app = Recorder()
    application = ProtocolTypeRouter(
        {"websocket": Middleware(URLRouter([path("ws/", URLRouter([path("chat/", app)]))]))}
    )
    await route(application, "/ws/chat/")
    assert app.scope["middleware_ran"] is True


# get_default_application -------------------------------------------------------------------------


def test_default_application_is_the_object_asgi_application_names(settings: Any) -> None:
    settings.ASGI_APPLICATION = "realtime.tests.test_routing.DEFAULT_APPLICATION"
    application = get_default_application()
    # (pytest may import this module under another name, so compare by content, not identity)
    assert isinstance(application, ProtocolTypeRouter)
    assert list(application.application_mapping) == ["aprs"]


def test_default_application_without_the_setting_says_so(settings: Any) -> None:
    del settings.ASGI_APPLICATION
    with pytest.raises(ImproperlyConfigured, match="Cannot find ASGI_APPLICATION setting"):
        get_default_application()


def test_default_application_with_a_missing_name_names_it(settings: Any) -> None:
    settings.ASGI_APPLICATION = "realtime.tests.test_routing.no_such_application"
    with pytest.raises(ImproperlyConfigured, match="Cannot find 'no_such_application'"):
        get_default_application()


DEFAULT_APPLICATION = ProtocolTypeRouter({"aprs": Recorder()})


@pytest.mark.parametrize(
    ("router", "scope"),
    [
        (lambda: URLRouter([]), {"type": "http", "path": "/nowhere/"}),
        (lambda: ProtocolTypeRouter({}), {"type": "aprs"}),
        (lambda: ChannelNameRouter({}), {"type": "channel", "channel": "nobody-listens"}),
    ],
    ids=["path", "scope-type", "channel"],
)
async def test_every_router_miss_is_a_route_not_found_value_error(router, scope) -> None:
    from realtime.exceptions import RouteNotFound

    async def receive():
        return {"type": "http.request"}

    async def send(message):
        pass

    with pytest.raises(RouteNotFound) as missed:
        await router()(scope, receive, send)
    assert isinstance(missed.value, ValueError)  # what Channels code catches
