"""The base class for ASGI middleware, as in Django Channels (`channels.middleware`).

Middleware wraps an application and may change the scope on the way in:

    class TenantMiddleware(BaseMiddleware):
        async def __call__(self, scope, receive, send):
            scope = {**scope, "tenant": tenant_for(scope)}
            return await super().__call__(scope, receive, send)

    application = TenantMiddleware(URLRouter([...]))

The wrapped application (a list of routes becomes a router, a consumer class `as_asgi()`) is kept
in `inner`; routers follow that attribute to find a URLRouter
behind middleware, so `path("ws/", TenantMiddleware(URLRouter([...])))` nests as expected.
"""

from __future__ import annotations

from realtime.routing import as_application
from realtime.types import ASGIApp, Receive, Scope, Send


class BaseMiddleware:
    """Calls `inner` with a copy of the scope, so what a subclass adds never leaks to the
    application around it."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = as_application(inner, f"{type(self).__name__}(...)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        return await self.inner(dict(scope), receive, send)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} inner={self.inner!r}>"


__all__ = ["BaseMiddleware"]
