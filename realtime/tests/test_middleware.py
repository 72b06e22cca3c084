"""BaseMiddleware, as a specification: a scope copy for the inner app, findable by routers."""

from __future__ import annotations

from typing import Any

from django.urls import path

from realtime.middleware import BaseMiddleware
from realtime.routing import URLRouter


class Recorder:
    def __init__(self) -> None:
        self.scope: dict[str, Any] | None = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.scope = dict(scope)


class Tenant(BaseMiddleware):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        scope["tenant"] = "acme"
        await super().__call__(scope, receive, send)


class Marker(BaseMiddleware):
    """Marks the scope it passes inward, after the copy BaseMiddleware makes."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.inner({**scope, "marked": True}, receive, send)


async def test_inner_application_gets_the_scope_with_the_middleware_changes() -> None:
    app = Recorder()
    await Tenant(app)({"type": "websocket", "path": "/"}, None, None)
    assert app.scope == {"type": "websocket", "path": "/", "tenant": "acme"}


async def test_inner_application_gets_a_copy_of_the_scope() -> None:
    class Mutating:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            scope["changed_inside"] = True

    outer_scope = {"type": "websocket", "path": "/"}
    await BaseMiddleware(Mutating())(outer_scope, None, None)
    assert outer_scope == {"type": "websocket", "path": "/"}


async def test_router_nested_behind_base_middleware_matches_a_prefix() -> None:
    app = Recorder()
    router = URLRouter([path("ws/", Marker(URLRouter([path("chat/<slug:room>/", app)])))])
    await router({"type": "websocket", "path": "/ws/chat/lobby/"}, None, None)
    assert app.scope["marked"] is True
    assert app.scope["url_route"]["kwargs"] == {"room": "lobby"}
