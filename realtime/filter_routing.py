"""Filter routing, as in Channels 1.x: ``route()``, ``route_class()`` and ``include()``.

A list of routes is tried in order; the first that fully matches wins::

    routing = [
        route("websocket.connect", ws_connect, path=r"^/chat/(?P<room>[a-z]+)/$"),
        route("websocket.receive", ws_message, path=r"^/chat/(?P<room>[a-z]+)/$"),
        route_class(LiveBlogConsumer, path=r"^/liveblog/"),
        include("blog.routing.stream_routes", path=r"^/blog"),
        route("email.receive", comment_reply, to_address=r".*@example\\.com$", subject="^reply"),
        route("thumbnails-generate", make_thumbnail),                 # a worker channel
    ]

``route(channel_or_type, consumer, **filters)``
    A message consumer (a function of one ``message``, see :mod:`realtime.message`) for the
    messages that arrived on ``channel_or_type``: an event type (``"websocket.receive"``,
    ``"email.receive"``) or a worker channel's name (the scope's ``"channel"``).
``route_class(consumer, **filters)``
    A class consumer (``ChatConsumer``, or ``ChatConsumer.as_asgi(...)``, or any ASGI
    application) for whole connections whose scope matches the filters. A WebSocket consumer
    class only takes WebSocket connections, an HTTP one only HTTP.
``include(routes_or_dotted_path, **filters)``
    A nested list (or the dotted path of one: ``"blog.routing.stream_routes"``, or a module with
    a ``channel_routing`` or ``routing`` list). The part of each value its filters matched is
    removed before the inner routes see it: ``include(inner, path=r"^/liveblog")`` lets an inner
    ``path=r"^/stream/$"`` match ``/liveblog/stream/``.

Filters are regular expressions matched (``re.match``: from the start) against a key of the
message's content or, failing that, of the connection's scope: ``path``, ``method``,
``query_string``, or any key a protocol defines (``to_address``). Text, bytes (Latin-1) and
numbers are matched as text; a key that is missing, or whose value is something else, does not
match. All filters must match. Named groups become keyword arguments of the consumer (or, for a
class, ``scope["url_route"]["kwargs"]``); an inner route's win over an ``include()``'s. Paths keep
their leading slash, unlike Django's URL routing; behind a URLRouter the path is what that router
left (``scope["path_remaining"]``), with a leading slash.

A list of routes is an ASGI application wherever one is expected: in a ProtocolTypeRouter, behind
middleware, in a test communicator, for a custom protocol or the worker's "channel" scope.
:class:`FilterRouter` is what it becomes. A connection goes to the first ``route_class()`` its
scope matches, unless a ``route()`` that could take its messages comes first; then each of its
messages goes to the first ``route()`` that fully matches it. No match raises
:class:`~realtime.exceptions.RouteNotFound`, naming what was tried.

Mistakes fail when the routes are built, with ImproperlyConfigured saying what to write: a bad
regular expression, a filter on a key the protocol never has for that message (``method`` on a
WebSocket, ``text`` on ``websocket.connect``), a class given to ``route()``, a consumer that does
not take a keyword its filters capture.

Any object with ``match(message)`` (returning ``(consumer, kwargs)`` or None) and
``channel_names()`` is a route too, as in Channels 1.x.
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from realtime.exceptions import RouteNotFound
from realtime.message import Message, MessageConnection, MessageConsumer
from realtime.types import ASGIApp, Receive, Scope, Send

_MISSING = object()

# What the ASGI specifications put in scopes and events, for the construction-time check of
# filters on keys that a message can never have.
_SCOPE_KEYS = {
    "http": {
        "type", "asgi", "http_version", "method", "scheme", "path", "raw_path",
        "query_string", "root_path", "headers", "client", "server", "state", "extensions",
    },
    "websocket": {
        "type", "asgi", "http_version", "scheme", "path", "raw_path", "query_string",
        "root_path", "headers", "client", "server", "subprotocols", "state", "extensions",
    },
}  # fmt: skip
_EVENT_KEYS = {
    "http.request": {"body", "more_body"},
    "http.disconnect": set(),
    "websocket.connect": set(),
    "websocket.receive": {"text", "bytes"},
    "websocket.disconnect": {"code", "reason"},
}
_MESSAGE_KEYS = {"reply_channel", "order"}
_SPEC_KEYS = set().union(*_SCOPE_KEYS.values(), *_EVENT_KEYS.values())
_CHANNEL_NAME = re.compile(r"\A[a-zA-Z0-9\-_.!]+\Z")


def _text(value: Any) -> str | None:
    """What a filter is matched against: text as it is, bytes as Latin-1, numbers as written."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    if isinstance(value, int | float):
        return str(value)
    return None


class _View:
    """The values one match sees: ``lookup`` (content, then scope), with ``overrides`` (what an
    include() left of a value) on top; ``names`` are what the message arrived as."""

    def __init__(
        self,
        lookup: Callable[[str], Any],
        names: tuple[str, ...],
        message: Message | None,
        overrides: Mapping[str, str],
        protocol: str,
    ) -> None:
        self.lookup = lookup
        self.names = names
        self.message = message
        self.overrides = dict(overrides)
        self.protocol = protocol

    def get(self, key: str) -> Any:
        if key in self.overrides:
            return self.overrides[key]
        try:
            return self.lookup(key)
        except KeyError:
            return _MISSING

    def stripped(self, values: Mapping[str, str]) -> _View:
        return _View(
            self.lookup, self.names, self.message, {**self.overrides, **values}, self.protocol
        )


class _Filters:
    """Compiled ``key=regex`` filters."""

    def __init__(self, filters: Mapping[str, Any], where: Callable[[], str]) -> None:
        self.patterns: dict[str, re.Pattern[str]] = {}
        for key, value in filters.items():
            if isinstance(value, re.Pattern):
                self.patterns[key] = value
                continue
            if not isinstance(value, str):
                raise ImproperlyConfigured(
                    f"{where()}: the filter {key}={value!r} must be a regular expression "
                    f"string, such as {key}=r'^/chat/$'"
                )
            try:
                self.patterns[key] = re.compile(value)
            except re.error as error:
                raise ImproperlyConfigured(
                    f"{where()}: the filter {key}={value!r} is not a valid regular expression "
                    f"({error})"
                ) from error

    @property
    def group_names(self) -> set[str]:
        return {name for pattern in self.patterns.values() for name in pattern.groupindex}

    def match(
        self, view: _View, strip: bool = False, missing_matches: bool = False
    ) -> tuple[dict[str, str], dict[str, str]] | None:
        """(captured keywords, what is left of each matched value) or None. With
        ``missing_matches``, a key the view lacks passes (its check is left for later)."""
        kwargs: dict[str, str] = {}
        remaining: dict[str, str] = {}
        for key, pattern in self.patterns.items():
            value = view.get(key)
            if value is _MISSING and missing_matches:
                continue
            text = _text(value)
            if text is None:
                return None
            found = pattern.match(text)
            if found is None:
                return None
            kwargs.update({name: v for name, v in found.groupdict().items() if v is not None})
            if strip:
                remaining[key] = text[found.end() :]
        return kwargs, remaining

    def describe(self) -> str:
        return "".join(f", {key}={pattern.pattern!r}" for key, pattern in self.patterns.items())


def _check_keys(filters: _Filters, allowed: set[str] | None, where: Callable[[], str], what: str):
    if allowed is None:
        return
    for key in filters.patterns:
        if key in _SPEC_KEYS and key not in allowed:
            raise ImproperlyConfigured(
                f"{where()} filters on {key!r}, which {what} never have; they have "
                f"{sorted(allowed & _SPEC_KEYS)} (and keys your protocol or middleware adds)"
            )


def _callable_name(consumer: Any) -> str:
    return getattr(consumer, "__qualname__", None) or repr(consumer)


class Route:
    """``route(channel_or_type, consumer, **filters)``: see the module docstring."""

    def __init__(self, channel: str, consumer: MessageConsumer, **filters: Any) -> None:
        if not isinstance(channel, str) or not _CHANNEL_NAME.match(channel):
            raise ImproperlyConfigured(
                f"route() takes a channel name or an event type such as 'websocket.receive' "
                f"first, got {channel!r}"
            )
        self.channel = channel
        self.consumer = consumer
        self.filters = _Filters(
            filters, lambda: f"route({channel!r}, {_callable_name(consumer)}, ...)"
        )
        self._check_consumer()
        protocol, _, _ = channel.partition(".")
        if channel in _EVENT_KEYS:
            _check_keys(
                self.filters,
                _SCOPE_KEYS[protocol] | _EVENT_KEYS[channel] | _MESSAGE_KEYS,
                self.__repr__,
                f"{channel} messages",
            )
        self.check_keywords(self.filters.group_names, "its filters capture")

    def _check_consumer(self) -> None:
        consumer = self.consumer
        if inspect.isclass(consumer):
            if hasattr(consumer, "as_asgi"):
                raise ImproperlyConfigured(
                    f"route({self.channel!r}, {consumer.__qualname__}) got a consumer class; "
                    f"route() takes a function of one message. Write "
                    f"route_class({consumer.__qualname__}, ...) to route connections to it."
                )
            raise ImproperlyConfigured(
                f"route({self.channel!r}, ...) takes a function of one message, got the class "
                f"{consumer.__qualname__}"
            )
        if not callable(consumer):
            raise ImproperlyConfigured(
                f"route({self.channel!r}, ...) takes a function of one message, got {consumer!r}"
            )

    def _signature(self) -> inspect.Signature | None:
        try:
            return inspect.signature(self.consumer)
        except (TypeError, ValueError):  # some builtins have none; nothing to check
            return None

    def check_keywords(self, names: set[str], source: str) -> None:
        """Fail unless the consumer takes the keyword arguments ``names``."""
        signature = self._signature()
        if signature is None:
            return
        parameters = list(signature.parameters.values())
        if any(p.kind is p.VAR_KEYWORD for p in parameters):
            return
        keywords = {
            p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        }
        name = _callable_name(self.consumer)
        for keyword in sorted(names - keywords):
            raise ImproperlyConfigured(
                f"{name}() does not take the keyword argument {keyword!r} that {source} "
                f"({self!r}); write def {name.rsplit('.', 1)[-1]}(message, {keyword}, ...)"
            )

    def check_arguments(self, supplied: set[str]) -> None:
        """Fail unless the consumer can be called with the message and the keywords
        ``supplied`` (its own filters' and its include()s' named groups)."""
        signature = self._signature()
        if signature is None:
            return
        parameters = list(signature.parameters.values())
        positional = [
            p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        name = _callable_name(self.consumer)
        if not positional and not any(p.kind is p.VAR_POSITIONAL for p in parameters):
            raise ImproperlyConfigured(
                f"{name}() takes no positional argument; a message consumer is called with the "
                f"message: write def {name.rsplit('.', 1)[-1]}(message)"
            )
        supplied = supplied | self.filters.group_names
        unfilled = [
            p
            for p in [*positional[1:], *(p for p in parameters if p.kind is p.KEYWORD_ONLY)]
            if p.default is p.empty and p.name not in supplied
        ]
        if unfilled:
            names = ", ".join(p.name for p in unfilled)
            hint = (
                " That is an ASGI application's signature: route it with route_class(app, ...)."
                if len(positional) == 3 and not self.filters.group_names
                else ""
            )
            raise ImproperlyConfigured(
                f"{name}() needs {names}, which no filter of {self!r} (or of an include() "
                f"around it) captures; a message consumer takes the message and its filters' "
                f"named groups.{hint}"
            )

    def channel_names(self) -> set[str]:
        return {self.channel}

    def plausible_for(self, view: _View) -> bool:
        """Whether this route may take messages of a connection with this scope."""
        if view.protocol != "channel" and not self.channel.startswith(f"{view.protocol}."):
            return False
        return self.filters.match(view, missing_matches=True) is not None

    def match_view(self, view: _View) -> tuple[MessageConsumer, dict[str, Any]] | None:
        if self.channel not in view.names:
            return None
        matched = self.filters.match(view)
        if matched is None:
            return None
        return self.consumer, matched[0]

    def match(self, message: Message) -> tuple[MessageConsumer, dict[str, Any]] | None:
        """Channels 1.x's routing interface: ``(consumer, kwargs)`` or None."""
        return self.match_view(_message_view(message))

    def __repr__(self) -> str:
        return f"route({self.channel!r}, {_callable_name(self.consumer)}{self.filters.describe()})"


class RouteClass:
    """``route_class(consumer, **filters)``: see the module docstring."""

    def __init__(self, consumer: Any, **filters: Any) -> None:
        self.consumer = consumer
        self.application: ASGIApp = self._application(consumer)
        consumer_class = consumer if inspect.isclass(consumer) else None
        consumer_class = consumer_class or getattr(consumer, "consumer_class", None)
        self.protocol: str | None = None
        if consumer_class is not None:
            if hasattr(consumer_class, "websocket_connect"):
                self.protocol = "websocket"
            elif hasattr(consumer_class, "http_request"):
                self.protocol = "http"
        self.filters = _Filters(filters, lambda: f"route_class({_callable_name(consumer)}, ...)")
        if self.protocol is not None:
            _check_keys(
                self.filters,
                _SCOPE_KEYS[self.protocol],
                self.__repr__,
                f"{self.protocol} connection scopes (route_class() routes whole connections)",
            )

    def _application(self, consumer: Any) -> ASGIApp:
        if inspect.isclass(consumer):
            if not hasattr(consumer, "as_asgi"):
                raise ImproperlyConfigured(
                    f"route_class() takes a consumer class (one with as_asgi()) or an ASGI "
                    f"application, got the class {consumer.__qualname__}"
                )
            consumer_class: Any = consumer
            return consumer_class.as_asgi()
        if not callable(consumer):
            raise ImproperlyConfigured(
                f"route_class() takes a consumer class or an ASGI application, got {consumer!r}"
            )
        return consumer

    def channel_names(self) -> set[str]:
        names = getattr(self.consumer, "channel_names", None)
        return set(names()) if callable(names) else set()

    def match_scope(self, view: _View) -> dict[str, Any] | None:
        if self.protocol is not None and view.protocol != self.protocol:
            return None
        matched = self.filters.match(view)
        return None if matched is None else matched[0]

    def __repr__(self) -> str:
        return f"route_class({_callable_name(self.consumer)}{self.filters.describe()})"


class Include:
    """``include(routes_or_dotted_path, **filters)``: see the module docstring."""

    def __init__(self, routing: Any, **filters: Any) -> None:
        self.source = routing if isinstance(routing, str) else None
        self.filters = _Filters(filters, lambda: f"include({self.source or '[...]'!r}, ...)")
        self.routes = _checked_routes(_load_routes(routing), self.__repr__)
        for entry in _flattened(self.routes):
            if isinstance(entry, Route):
                entry.check_keywords(self.filters.group_names, "an include() around it captures")

    def channel_names(self) -> set[str]:
        return _channel_names(self.routes)

    def __repr__(self) -> str:
        # The inner routes are part of what "no route" errors say was tried.
        routes = getattr(self, "routes", [])
        source = repr(self.source) if self.source else "[...]"
        return f"include({source}{self.filters.describe()}) -> {routes!r}"


def route(channel_or_type: str, consumer: MessageConsumer, **filters: Any) -> Route:
    """Route messages on ``channel_or_type`` matching ``filters`` to the message consumer."""
    return Route(channel_or_type, consumer, **filters)


def route_class(consumer: Any, **filters: Any) -> RouteClass:
    """Route connections whose scope matches ``filters`` to a class consumer (or ASGI app)."""
    return RouteClass(consumer, **filters)


def include(routing: Any, **filters: Any) -> Include:
    """Nest a list of routes (or the dotted path of one) under ``filters``."""
    return Include(routing, **filters)


def _load_routes(routing: Any) -> Any:
    if not isinstance(routing, str):
        return routing
    try:
        module: Any = importlib.import_module(routing)
    except ImportError:
        module = None
    if isinstance(module, ModuleType):
        for attribute in ("channel_routing", "routing"):
            if isinstance(getattr(module, attribute, None), list | tuple):
                return getattr(module, attribute)
        raise ImproperlyConfigured(
            f"include({routing!r}): the module has no channel_routing or routing list; write "
            f"include('{routing}.name_of_the_list')"
        )
    module_name, _, attribute = routing.rpartition(".")
    try:
        module = importlib.import_module(module_name) if module_name else None
    except ImportError as error:
        raise ImproperlyConfigured(f"include({routing!r}) cannot import {module_name!r}") from error
    if module is None or not hasattr(module, attribute):
        raise ImproperlyConfigured(
            f"include({routing!r}): no module or list of routes by that name; write the dotted "
            f"path of a list, such as 'chat.routing.channel_routing'"
        )
    return getattr(module, attribute)


def _is_route(entry: Any) -> bool:
    if isinstance(entry, Route | RouteClass | Include):
        return True
    return callable(getattr(entry, "match", None)) and callable(
        getattr(entry, "channel_names", None)
    )


def _checked_routes(routes: Any, where: Callable[[], str]) -> list[Any]:
    if not isinstance(routes, list | tuple):
        raise ImproperlyConfigured(
            f"{where()} needs a list of route(), route_class() and include() entries, "
            f"got {routes!r:.200}"
        )
    for index, entry in enumerate(routes):
        if not _is_route(entry):
            hint = ""
            if type(entry).__module__.startswith("django.urls"):
                hint = "; Django's path()/re_path() go in a URLRouter"
            elif callable(entry):
                hint = f"; wrap it: route('<channel>', {_callable_name(entry)}) or route_class(...)"
            raise ImproperlyConfigured(
                f"{where()}: entry {index} is {entry!r:.120}, not a route{hint}. Routes are "
                f"route(), route_class(), include(), or objects with match() and channel_names()"
            )
    return list(routes)


def _flattened(routes: Iterable[Any]) -> Iterable[Any]:
    for entry in routes:
        if isinstance(entry, Include):
            yield from _flattened(entry.routes)
        else:
            yield entry


def _check_arguments(routes: Iterable[Any], supplied: set[str]) -> None:
    for entry in routes:
        if isinstance(entry, Route):
            entry.check_arguments(supplied)
        elif isinstance(entry, Include):
            _check_arguments(entry.routes, supplied | entry.filters.group_names)


def _channel_names(routes: Iterable[Any]) -> set[str]:
    names: set[str] = set()
    for entry in routes:
        names |= set(entry.channel_names())
    return names


def _routing_path(scope: Mapping[str, Any]) -> str | None:
    """The path filters see: behind a URLRouter what it left, else the path below root_path."""
    if "path_remaining" in scope:
        return "/" + str(scope["path_remaining"]).lstrip("/")
    path = scope.get("path")
    if not isinstance(path, str):
        return None
    root_path = scope.get("root_path") or ""
    if root_path and path.startswith(root_path):
        path = path[len(root_path) :]
    return path


def _initial_overrides(scope: Mapping[str, Any]) -> dict[str, str]:
    path = _routing_path(scope)
    return {} if path is None else {"path": path}


def _message_view(message: Message) -> _View:
    scope = message.scope
    names = [message.channel.name]
    event_type = message.content.get("type")
    if isinstance(event_type, str) and event_type not in names:
        names.append(event_type)
    return _View(
        message.lookup,
        tuple(names),
        message,
        _initial_overrides(scope),
        str(scope.get("type", "channel")),
    )


def _match_message(
    routes: Sequence[Any], view: _View
) -> tuple[MessageConsumer, dict[str, Any]] | None:
    for entry in routes:
        if isinstance(entry, Route):
            found = entry.match_view(view)
        elif isinstance(entry, RouteClass):
            continue  # class consumers take whole connections, never a single message
        elif isinstance(entry, Include):
            matched = entry.filters.match(view, strip=True)
            if matched is None:
                continue
            outer_kwargs, remaining = matched
            inner = _match_message(entry.routes, view.stripped(remaining))
            found = None if inner is None else (inner[0], {**outer_kwargs, **inner[1]})
        else:
            assert view.message is not None
            found = entry.match(view.message)
        if found is not None:
            return found
    return None


def _match_scope(
    routes: Sequence[Any], view: _View
) -> tuple[ASGIApp | None, dict[str, Any]] | None:
    """(class application, captured kwargs) for a class route, (None, {}) for message routes,
    None when nothing can take the connection."""
    for entry in routes:
        if isinstance(entry, Route):
            if entry.plausible_for(view):
                return None, {}
        elif isinstance(entry, RouteClass):
            kwargs = entry.match_scope(view)
            if kwargs is not None:
                return entry.application, kwargs
        elif isinstance(entry, Include):
            matched = entry.filters.match(view, strip=True, missing_matches=True)
            if matched is None:
                continue
            outer_kwargs, remaining = matched
            inner = _match_scope(entry.routes, view.stripped(remaining))
            if inner is not None:
                return inner[0], {**outer_kwargs, **inner[1]}
        else:
            return None, {}  # a custom route object: it judges each message
    return None


def _describe_connection(scope: Mapping[str, Any]) -> str:
    if scope.get("type") == "channel":
        return f"channel {scope.get('channel')!r}"
    path = _routing_path(scope)
    if path is not None:
        return f"{scope.get('type')} connection to {path!r}"
    details = {key: value for key, value in scope.items() if _text(value) is not None}
    return f"{scope.get('type')} connection {details!r:.200}"


class FilterRouter:
    """A list of routes as an ASGI application (see the module docstring); built for you where
    a list is given as an application, or explicitly: ``FilterRouter([route(...), ...])``."""

    # Behind a URLRouter's path() it matches a prefix and routes on the rest, like a URLRouter.
    _path_routing = True

    def __init__(self, routes: Iterable[Any]) -> None:
        self.routes = _checked_routes(list(routes), lambda: "FilterRouter")
        _check_arguments(self.routes, set())

    def channel_names(self) -> set[str]:
        """Every channel name or event type the routes name (1.x's routing interface)."""
        return _channel_names(self.routes)

    def match(self, message: Message) -> tuple[MessageConsumer, dict[str, Any]] | None:
        """The first route's ``(consumer, kwargs)`` for ``message``, or None."""
        return _match_message(self.routes, _message_view(message))

    def not_found(self, message: Message) -> RouteNotFound:
        return RouteNotFound(
            f"No route matched {message.channel.name} on the "
            f"{_describe_connection(message.scope)}; tried {self.routes!r}"
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        view = _View(
            scope.__getitem__,
            tuple(str(scope[key]) for key in ("type", "channel") if key in scope),
            None,
            _initial_overrides(scope),
            str(scope.get("type", "")),
        )
        decision = _match_scope(self.routes, view)
        if decision is None:
            raise RouteNotFound(
                f"No route matched the {_describe_connection(scope)}; tried {self.routes!r}"
            )
        application, kwargs = decision
        if application is not None:
            outer = scope.get("url_route") or {}
            url_route = {
                "args": tuple(outer.get("args", ())),
                "kwargs": {**outer.get("kwargs", {}), **kwargs},
            }
            return await application({**scope, "url_route": url_route}, receive, send)
        connection = MessageConnection(scope, receive, send, self.match, self.not_found)
        return await connection.run()

    def __repr__(self) -> str:
        return f"FilterRouter({self.routes!r})"


__all__ = [
    "FilterRouter",
    "Include",
    "Route",
    "RouteClass",
    "include",
    "route",
    "route_class",
]
