"""Django Channels' old name for Django's ASGI handler: ``realtime.http.AsgiHandler``
(``channels.http.AsgiHandler``), deprecated as it is in Channels.

    from django.core.asgi import get_asgi_application
    application = ProtocolTypeRouter({"http": get_asgi_application(), ...})   # write this

Code written for Channels 2 and 3 keeps working meanwhile, with a DeprecationWarning, in both of
its spellings::

    URLRouter([re_path(r"^longpoll/$", LongPollConsumer.as_asgi()), re_path(r"", AsgiHandler)])
    ProtocolTypeRouter({"http": AsgiHandler()})

``AsgiHandler`` is an application itself (called with ``scope, receive, send``), and calling it
with no arguments returns one. Both serve requests with one Django ASGI handler per process.
"""

from __future__ import annotations

import warnings
from typing import Any

from realtime.types import ASGIApp, Receive, Scope, Send

DEPRECATION = (
    "realtime.http.AsgiHandler is deprecated, as channels.http.AsgiHandler is: use "
    "django.core.asgi.get_asgi_application() instead"
)


class _DeprecatedAsgiHandler:
    """``AsgiHandler``: see the module docstring."""

    def __init__(self) -> None:
        self._application: ASGIApp | None = None

    def _django_application(self) -> ASGIApp:
        if self._application is None:
            from django.core.asgi import get_asgi_application

            self._application = get_asgi_application()
        return self._application

    def __call__(self, *args: Any) -> Any:
        warnings.warn(DEPRECATION, DeprecationWarning, stacklevel=2)
        if not args:
            return self._django_application()
        if len(args) != 3:
            raise TypeError(
                f"AsgiHandler takes (scope, receive, send), or nothing to build an application; "
                f"got {len(args)} arguments"
            )
        scope, receive, send = args
        return self._serve(scope, receive, send)

    async def _serve(self, scope: Scope, receive: Receive, send: Send) -> None:
        return await self._django_application()(scope, receive, send)

    def __repr__(self) -> str:
        return "<AsgiHandler (deprecated): Django's ASGI handler>"


AsgiHandler = _DeprecatedAsgiHandler()

__all__ = ["AsgiHandler"]
