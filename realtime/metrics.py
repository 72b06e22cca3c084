"""Process-wide connection metrics for any ASGI application, exported in Prometheus format.

Wrap the root application once; the middleware knows nothing about the apps behind it:

    application = ConnectionMetricsMiddleware(ProtocolTypeRouter({...}))

What it counts, per process (a Prometheus scrape of each process adds them up):

    realtime_open_connections{type="websocket", route="ws/chat/<slug:room>/"}   gauge
    realtime_connections_total{type="websocket", route="..."}                  counter
    realtime_messages_routed_total{type="websocket", direction="in"|"out"}     counter
    realtime_long_polls_waiting{route="notifications/poll/"}                    gauge

`route` is the Django pattern of the URLRouter entry that serves the path (so a room name never
becomes a label value); when that entry is Django's own ASGI handler (the catch-all of the "http"
router), it is the pattern of the Django URL the path resolves to (`rooms/<str:slug>/`, "/" for
the site root). Paths nothing matches are labelled "unmatched", and scope types without a path
(worker channels, "aprs") use the channel name or "-". `direction="in"` counts events the
application received from the server (frames, requests, layer messages on worker channels), "out"
the ones it sent. Long-polls waiting are HTTP requests to an ASGI route of their own (not Django)
whose application has not started the response yet; Django views, the /metrics scrape among
them, are never counted there.

The hot path costs a few dictionary increments per connection and one integer add per message: the
counters are plain ints read only when /metrics is scraped (`MetricsCollector`), never
prometheus_client objects with locks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from django.core.handlers.asgi import ASGIHandler
from django.urls import Resolver404, resolve

from realtime.routing import ScopeKeyRouter, URLRouter, find_router
from realtime.types import ASGIApp, Message, Receive, Scope, Send

#: Label for a path that no URLRouter route matches (the router will refuse it).
UNMATCHED_ROUTE = "unmatched"
#: Label for scopes that have neither a path nor a channel name.
NO_ROUTE = "-"
#: Label for the Django URL pattern "" (the site root).
DJANGO_ROOT_ROUTE = "/"
#: How many distinct (type, path) -> route answers are remembered before the memo starts over.
ROUTE_MEMO_SIZE = 4096


class ConnectionCounters:
    """The numbers behind /metrics: plain counters, updated by the middleware on the event loop."""

    def __init__(self) -> None:
        self.open_connections: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.connections_total: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.messages_in: defaultdict[str, int] = defaultdict(int)
        self.messages_out: defaultdict[str, int] = defaultdict(int)
        self.long_polls_waiting: defaultdict[str, int] = defaultdict(int)

    def reset(self) -> None:
        """Forget everything (for tests)."""
        self.__init__()  # type: ignore[misc]


#: The counters of this process.
COUNTERS = ConnectionCounters()


class ConnectionMetricsMiddleware:
    """ASGI middleware counting open connections by route and messages routed, for any app."""

    def __init__(self, inner: ASGIApp, counters: ConnectionCounters = COUNTERS) -> None:
        self.inner = inner
        self.counters = counters
        # (type, path) -> (route label, whether a waiting request there is a long-poll)
        self._routes: dict[tuple[str, str], tuple[str, bool]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope_type = scope.get("type", NO_ROUTE)
        if scope_type == "lifespan":
            await self.inner(scope, receive, send)
            return
        route, long_poll = self.route_info(scope)
        key = (scope_type, route)
        counters = self.counters
        counters.open_connections[key] += 1
        counters.connections_total[key] += 1
        messages_in = counters.messages_in
        messages_out = counters.messages_out
        is_http = scope_type == "http" and long_poll
        waiting = False

        async def counted_receive() -> Message:
            nonlocal waiting
            message = await receive()
            messages_in[scope_type] += 1
            if (
                is_http
                and not waiting
                and message.get("type") == "http.request"
                and not message.get("more_body", False)
            ):
                waiting = True
                counters.long_polls_waiting[route] += 1
            return message

        async def counted_send(message: Message) -> None:
            nonlocal waiting
            messages_out[scope_type] += 1
            if waiting and message.get("type") == "http.response.start":
                waiting = False
                counters.long_polls_waiting[route] -= 1
            await send(message)

        try:
            await self.inner(scope, counted_receive, counted_send)
        finally:
            counters.open_connections[key] -= 1
            if waiting:
                counters.long_polls_waiting[route] -= 1

    def route_label(self, scope: Scope) -> str:
        """The route pattern serving this scope (memoised per type and path)."""
        return self.route_info(scope)[0]

    def route_info(self, scope: Scope) -> tuple[str, bool]:
        """(route label, whether a waiting HTTP request there is a long-poll), memoised per type
        and path."""
        if "path" not in scope:
            channel = scope.get("channel")
            return (channel if isinstance(channel, str) else NO_ROUTE), False
        memo_key = (scope.get("type", NO_ROUTE), scope["path"])
        info = self._routes.get(memo_key)
        if info is None:
            if len(self._routes) >= ROUTE_MEMO_SIZE:
                self._routes.clear()
            info = self._routes[memo_key] = _find_route(self.inner, scope)
        return info


def _find_route(application: Any, scope: Scope) -> tuple[str, bool]:
    """Follow protocol routers and middleware to the URLRouter for this scope and name the
    pattern of its first route that matches the path."""
    for _ in range(16):
        if isinstance(application, ScopeKeyRouter):
            try:
                application = application.get_application(scope)
            except ValueError:
                return UNMATCHED_ROUTE, False
            continue
        router = find_router(application)
        if router is None:
            return NO_ROUTE, True
        return _match(router, scope)
    return NO_ROUTE, False


def _match(router: URLRouter, scope: Scope) -> tuple[str, bool]:
    path: str = scope["path"]
    root_path = scope.get("root_path", "")
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    route = router.matching_route(path)
    if route is None:
        return UNMATCHED_ROUTE, False
    if isinstance(getattr(route, "callback", None), ASGIHandler):
        return _django_route(path), False
    return str(route.pattern), True


def _django_route(path: str) -> str:
    """The pattern of the Django URL `path` resolves to (ROOT_URLCONF), or "unmatched"."""
    try:
        match = resolve("/" + path.lstrip("/"))
    except Resolver404:
        return UNMATCHED_ROUTE
    return match.route or DJANGO_ROOT_ROUTE


class MetricsCollector:
    """A prometheus_client collector that reads `ConnectionCounters` (and any extra gauges) at
    scrape time."""

    def __init__(self, counters: ConnectionCounters = COUNTERS) -> None:
        self.counters = counters

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counters = self.counters
        open_connections = GaugeMetricFamily(
            "realtime_open_connections",
            "Connections open now, by scope type and route.",
            labels=["type", "route"],
        )
        for (scope_type, route), value in sorted(counters.open_connections.items()):
            open_connections.add_metric([scope_type, route], value)
        yield open_connections

        connections = CounterMetricFamily(
            "realtime_connections",
            "Connections accepted since the process started, by scope type and route.",
            labels=["type", "route"],
        )
        for (scope_type, route), value in sorted(counters.connections_total.items()):
            connections.add_metric([scope_type, route], value)
        yield connections

        routed = CounterMetricFamily(
            "realtime_messages_routed",
            "ASGI events routed to (in) and from (out) applications, by scope type.",
            labels=["type", "direction"],
        )
        for scope_type, value in sorted(counters.messages_in.items()):
            routed.add_metric([scope_type, "in"], value)
        for scope_type, value in sorted(counters.messages_out.items()):
            routed.add_metric([scope_type, "out"], value)
        yield routed

        waiting = GaugeMetricFamily(
            "realtime_long_polls_waiting",
            "HTTP requests held open without a response yet (long-polls), by route.",
            labels=["route"],
        )
        for route, value in sorted(counters.long_polls_waiting.items()):
            waiting.add_metric([route], value)
        yield waiting


__all__ = [
    "COUNTERS",
    "ConnectionCounters",
    "ConnectionMetricsMiddleware",
    "MetricsCollector",
]
