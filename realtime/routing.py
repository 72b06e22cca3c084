"""Routers: ASGI applications that pick another ASGI application for each connection.

    application = ProtocolTypeRouter({                       # on scope["type"]
        "websocket": AuthMiddlewareStack(URLRouter([         # on scope["path"]
            path("ws/chat/<slug:room>/", ChatConsumer.as_asgi()),
            path("ws/admin/", URLRouter([...])),             # nested: "ws/admin/" is stripped
        ])),
        "channel": ChannelNameRouter({"thumbnails": Thumbnailer.as_asgi()}),  # scope["channel"]
    })

Routers are plain ASGI apps, so they nest and can be wrapped in middleware at any level. Each one
raises a ValueError that names what it could not route, which the server turns into a 404 or a
websocket close; nothing hangs.

What a URLRouter puts in the scope for the application it picks:

    scope["url_route"] = {"args": (...), "kwargs": {"room": "lobby"}}   # outer + inner, inner wins
    scope["path_remaining"] = "..."                                      # what is left of the path

Where Django Channels has known flaws, this module does better:

- Channels recognises a nested URLRouter only when it is the route's direct callback, so
  `path("ws/", AuthMiddlewareStack(URLRouter([...])))` never matches (its docs warn about this).
  Here a router is found through any middleware that keeps the wrapped app in `inner`,
  `application` or `app` (the convention of every middleware in `realtime`), so nesting with
  `path()` works whether or not the inner router is wrapped. Middleware that hides what it wraps
  can say it leads to a router with Channels' marker attribute `_path_routing = True`.
- Channels mutates the Django pattern objects it is given; here they are left untouched.
- Channels catches "no route" errors raised anywhere below a route, including by a consumer long
  after routing; here only a nested router's own miss makes the outer router try the next route.
- A consumer class routed directly (Channels 2's spelling, `re_path(r"^chat/$", ChatConsumer)`)
  is served as `ChatConsumer.as_asgi()`, instead of failing on the first connection.
- `include()` of a list or module of routes is accepted and behaves like a nested URLRouter.
- Routers return what the application they called returned.

Channels 1.x's filter routing lives here too: `route()`, `route_class()` and `include()`, whose
lists are ASGI applications wherever one is expected (a `FilterRouter`); see
`realtime.filter_routing`.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.urls import URLPattern, URLResolver
from django.urls.resolvers import RegexPattern, RoutePattern

from realtime.exceptions import RouteNotFound
from realtime.filter_routing import FilterRouter, include, route, route_class
from realtime.types import ASGIApp, Receive, Scope, Send

#: Attributes under which middleware keeps the application it wraps; followed to find routers.
WRAPPED_APPLICATION_ATTRIBUTES = ("inner", "application", "app")


def get_default_application() -> ASGIApp:
    """The root application that `settings.ASGI_APPLICATION` names ("config.asgi.application").

    Raises ImproperlyConfigured, with Channels' messages, when the setting is missing or does not
    lead to an object. An import error inside that module is not hidden: it is chained.
    """
    try:
        module_path, name = settings.ASGI_APPLICATION.rsplit(".", 1)
    except (ValueError, AttributeError):
        raise ImproperlyConfigured("Cannot find ASGI_APPLICATION setting.") from None
    try:
        module = importlib.import_module(module_path)
    except ImportError as error:
        raise ImproperlyConfigured(
            f"Cannot import ASGI_APPLICATION module {module_path!r}"
        ) from error
    try:
        return getattr(module, name)
    except AttributeError:
        raise ImproperlyConfigured(
            f"Cannot find {name!r} in ASGI_APPLICATION module {module_path}"
        ) from None


def as_application(application: Any, where: str) -> ASGIApp:
    """``application`` as an ASGI application, for a router or middleware to call.

    A consumer class becomes ``Consumer.as_asgi()`` (Channels 2 routed classes directly), a list
    of Django ``path()``/``re_path()`` routes a :class:`URLRouter`, a list of
    ``route()``/``route_class()``/``include()`` entries a :class:`FilterRouter`. Anything else
    must be callable; ``where`` names the place in the error.
    """
    if inspect.isclass(application):
        if hasattr(application, "as_asgi"):
            return application.as_asgi()
        raise ImproperlyConfigured(
            f"{where} points at the class {application.__qualname__}, "
            f"not an ASGI application or a consumer class."
        )
    if isinstance(application, list | tuple):
        if application and all(
            isinstance(entry, URLPattern | URLResolver) for entry in application
        ):
            return URLRouter(application)
        return FilterRouter(application)
    if not callable(application):
        raise ImproperlyConfigured(f"{where} points at {application!r}, which is not callable.")
    return application


class ScopeKeyRouter:
    """Routes on the value of one scope key: `scope[key]` -> application.

    The base of ProtocolTypeRouter (key "type") and ChannelNameRouter (key "channel"); it also
    routes on any other scope key a protocol server sets, for example the APRS server name:

        ScopeKeyRouter("server", {"rotate.aprs2.net:14580": LiveNews.as_asgi()}, default=Replay)
    """

    key: str = ""

    def __init__(
        self,
        application_mapping: Mapping[str, ASGIApp],
        *,
        key: str | None = None,
        default: ASGIApp | None = None,
    ) -> None:
        if key is not None:
            self.key = key
        if not self.key:
            raise ImproperlyConfigured(f"{type(self).__name__} needs the scope key to route on.")
        self.application_mapping: dict[str, ASGIApp] = {
            value: as_application(application, f"{type(self).__name__} route {value!r}")
            for value, application in application_mapping.items()
        }
        self.default = (
            None
            if default is None
            else as_application(default, f"{type(self).__name__} default route")
        )

    def get_application(self, scope: Scope) -> ASGIApp:
        """The application for this scope; a ValueError naming the value when there is none."""
        if self.key not in scope:
            raise ValueError(f"{type(self).__name__} got a scope without a {self.key!r} key.")
        value = scope[self.key]
        application = self.application_mapping.get(value, self.default)
        if application is None:
            raise RouteNotFound(self.missing_route_message(value))
        return application

    def missing_route_message(self, value: Any) -> str:
        return (
            f"No application configured for scope {self.key} {value!r}; "
            f"routes exist for {sorted(self.application_mapping)}"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return await self.get_application(scope)(scope, receive, send)


class ProtocolTypeRouter(ScopeKeyRouter):
    """Picks an application by `scope["type"]` ("http", "websocket", "channel", "aprs", ...).

    Without an "http" entry, HTTP goes to Django's own ASGI handler (created on first use, so the
    router can be built before Django is set up). An unknown type raises
    `ValueError("No application configured for scope type 'aprs'; routes exist for [...]")`.
    """

    key = "type"

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        super().__init__(application_mapping)
        self._django_application: ASGIApp | None = None

    def get_application(self, scope: Scope) -> ASGIApp:
        if scope.get("type") == "http" and "http" not in self.application_mapping:
            if self._django_application is None:
                from django.core.asgi import get_asgi_application

                self._django_application = get_asgi_application()
            return self._django_application
        return super().get_application(scope)

    def missing_route_message(self, value: Any) -> str:
        return (
            f"No application configured for scope type {value!r}; "
            f"routes exist for {sorted(self.application_mapping)}"
        )


class ChannelNameRouter(ScopeKeyRouter):
    """Picks an application by `scope["channel"]`, for scopes of type "channel" (the worker's).

    `application_mapping` and `channel_names()` tell the worker and `manage.py serve` which
    channels there are to listen on.
    """

    key = "channel"

    def __init__(self, application_mapping: Mapping[str, ASGIApp]) -> None:
        super().__init__(application_mapping)

    def channel_names(self) -> list[str]:
        """The channel names this router serves, sorted."""
        return sorted(self.application_mapping)

    def get_application(self, scope: Scope) -> ASGIApp:
        if "channel" not in scope:
            raise ValueError(
                "ChannelNameRouter got a scope without a 'channel' key. "
                "Did you make sure it's only being used for 'channel' type messages?"
            )
        return super().get_application(scope)

    def missing_route_message(self, value: Any) -> str:
        return (
            f"No application configured for channel name {value!r}; "
            f"routes exist for {self.channel_names()}"
        )


class _NestedRouteMiss(Exception):
    """A nested URLRouter matched nothing: its parent should try its next route."""


def find_router(application: Any, depth: int = 16) -> URLRouter | None:
    """The URLRouter `application` is, or wraps through middleware (followed via `inner`,
    `application` or `app`); None when there is none."""
    for _ in range(depth):
        if isinstance(application, URLRouter):
            return application
        for attribute in WRAPPED_APPLICATION_ATTRIBUTES:
            wrapped = getattr(application, attribute, None)
            if wrapped is not None and wrapped is not application:
                application = wrapped
                break
        else:
            return None
    return None


_REGEX_SPECIAL = set(".^$*+?{}[]\\|()")
_REGEX_QUANTIFIERS = set("*+?{")


def _literal_prefix(pattern: Any) -> str:
    """The text every path this pattern matches must start with ("" when unknown).

    Routing checks it with `str.startswith` before running the pattern, so a router with many
    routes spends a regular-expression search only on the routes that can match.
    """
    if isinstance(pattern, RoutePattern):
        route = pattern._route
        return route.partition("<")[0] if isinstance(route, str) else ""
    if isinstance(pattern, RegexPattern):
        regex = pattern._regex
        if not isinstance(regex, str) or not regex.startswith("^") or "|" in regex:
            return ""
        prefix: list[str] = []
        for character in regex[1:]:
            if character in _REGEX_QUANTIFIERS:
                # The quantifier makes the character before it optional or repeated.
                return "".join(prefix[:-1])
            if character in _REGEX_SPECIAL:
                break
            prefix.append(character)
        return "".join(prefix)
    return ""


class _Route:
    """One compiled entry of a URLRouter: a Django pattern, the app, default kwargs."""

    def __init__(self, route: URLPattern | URLResolver) -> None:
        self.description = str(route.pattern)
        if isinstance(route, URLResolver):
            if isinstance(route.urlconf_name, URLRouter):
                application: Any = route.urlconf_name
            else:
                application = URLRouter(route.url_patterns)
            self.default_kwargs: dict[str, Any] = dict(route.default_kwargs)
        elif isinstance(route, URLPattern):
            application = route.callback
            self.default_kwargs = dict(route.default_args)
        else:
            raise ImproperlyConfigured(
                f"URLRouter routes must be made with django.urls.path() or re_path(), "
                f"got {route!r}."
            )
        self.application: ASGIApp = as_application(application, f"Route {self.description!r}")
        # Channels' marker `_path_routing = True` also declares a nested router, for middleware
        # that hides the app it wraps (a closure, say).
        self.nested = find_router(application) is not None or bool(
            getattr(application, "_path_routing", False)
        )
        self.pattern = self._matching_pattern(route.pattern, endpoint=not self.nested)
        self.literal_prefix = _literal_prefix(route.pattern)

    @staticmethod
    def _matching_pattern(pattern: Any, endpoint: bool) -> Any:
        # A pattern leading to a nested router must match a prefix of the path, not all of it.
        # Build a fresh pattern rather than change the one the caller handed over.
        if endpoint:
            return pattern
        if isinstance(pattern, RegexPattern):
            return RegexPattern(pattern._regex, pattern.name, is_endpoint=False)
        if isinstance(pattern, RoutePattern):
            return RoutePattern(pattern._route, pattern.name, is_endpoint=False)
        raise ImproperlyConfigured(f"Unsupported URL pattern type: {type(pattern).__name__}")


class URLRouter:
    """Picks an application by the URL path, with Django's `path()` and `re_path()` routes.

        URLRouter([
            path("ws/chat/<slug:room>/", ChatConsumer.as_asgi()),
            re_path(r"^ws/news/(?P<kind>\\w+)/$", NewsConsumer.as_asgi()),
            path("ws/admin/", AdminOnly(URLRouter([path("console/", Console.as_asgi())]))),
        ])

    Paths are matched without their leading "/" and, at the outermost router, without
    `scope["root_path"]`. Converters turn captured values into Python values (`<int:id>` -> int).
    A route to a nested router (directly or through middleware) matches a prefix and hands the rest
    on in `scope["path_remaining"]`; the nested router's args are appended to the outer ones and
    its kwargs merged over them (inner wins), in `scope["url_route"]`.

    No match raises `ValueError("No route found for path 'ws/nowhere/'.")`; a nested router that
    matches nothing lets its parent try the parent's next route.
    """

    def __init__(self, routes: Iterable[URLPattern | URLResolver]) -> None:
        self.routes: list[URLPattern | URLResolver] = list(routes)
        self._compiled: Sequence[_Route] = [_Route(route) for route in self.routes]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        nested = "path_remaining" in scope
        path = scope["path_remaining"] if nested else self._outer_path(scope)
        path = path.lstrip("/")
        outer_route = scope.get("url_route", {})
        for compiled in self._compiled:
            if not path.startswith(compiled.literal_prefix):
                continue
            match = compiled.pattern.match(path)
            if not match:
                continue
            remaining, args, kwargs = match
            url_route = {
                "args": (*outer_route.get("args", ()), *args),
                "kwargs": {**outer_route.get("kwargs", {}), **kwargs, **compiled.default_kwargs},
            }
            inner_scope = {**scope, "path_remaining": remaining, "url_route": url_route}
            try:
                return await compiled.application(inner_scope, receive, send)
            except _NestedRouteMiss:
                # Only a router raises this, and only before it ran anything: try the next route.
                continue
        if nested:
            raise _NestedRouteMiss(path)
        raise RouteNotFound(f"No route found for path {path!r}.")

    def matching_route(self, path: str) -> URLPattern | URLResolver | None:
        """The first of `routes` that matches `path` (relative to this router, leading "/"
        ignored), matching a nested router's prefix as routing does; None when none matches.
        For tools that name a connection's route (metrics) without routing it."""
        path = path.lstrip("/")
        for candidate, compiled in zip(self.routes, self._compiled, strict=True):
            if path.startswith(compiled.literal_prefix) and compiled.pattern.match(path):
                return candidate
        return None

    @staticmethod
    def _outer_path(scope: Scope) -> str:
        path = scope.get("path")
        if path is None:
            raise ValueError("No 'path' key in connection scope, cannot route URLs")
        root_path = scope.get("root_path", "")
        if root_path:
            if not path.startswith(root_path):
                raise RouteNotFound(f"No route found for path {path!r}.")
            path = path[len(root_path) :]
        return path


__all__ = [
    "ChannelNameRouter",
    "FilterRouter",
    "ProtocolTypeRouter",
    "ScopeKeyRouter",
    "URLRouter",
    "as_application",
    "find_router",
    "get_default_application",
    "include",
    "route",
    "route_class",
]
