"""Channels 1.x's import path for the origin check of message consumers
(``channels.security.websockets``): :func:`allowed_hosts_only`.

    @allowed_hosts_only
    def ws_connect(message):
        message.reply_channel.send({"accept": True})

The ``Origin`` header of the ``websocket.connect`` message must name a host of
``settings.ALLOWED_HOSTS`` (the rules of :class:`realtime.security.AllowedHostsOriginValidator`:
``.example.com`` for subdomains, ``*`` for any; with DEBUG on and no ALLOWED_HOSTS, localhost);
otherwise the handshake is refused (``{"accept": False}``: the browser sees HTTP 403) and the
consumer does not run. A missing or unparseable Origin is refused too.

Given a consumer class or an ASGI application instead of a function, it returns that application
behind an :class:`~realtime.security.AllowedHostsOriginValidator`, which is what class consumers
use.
"""

from __future__ import annotations

from typing import Any

from realtime.security import AllowedHostsOriginValidator
from realtime.types import Receive, Scope, Send


async def _never_called(scope: Scope, receive: Receive, send: Send) -> None:
    raise RuntimeError("only used for its origin check")


_CHECK = AllowedHostsOriginValidator(_never_called)


def _origin(message: Any) -> str | None:
    for name, value in message.content.get("headers", []):
        header = name.decode("latin-1") if isinstance(name, bytes) else str(name)
        if header.lower() == "origin":
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return None


def _origin_allowed(message: Any) -> bool:
    if _CHECK.valid_origin(_origin(message)):
        return True
    message.reply_channel.send({"accept": False}, immediately=True)
    return False


def allowed_hosts_only(consumer: Any) -> Any:
    """Refuse WebSocket handshakes whose Origin is not an allowed host (module docstring)."""
    from realtime.message import is_message_consumer, message_decorator

    if not is_message_consumer(consumer):
        return AllowedHostsOriginValidator(consumer)
    return message_decorator(_origin_allowed)(consumer)


__all__ = ["allowed_hosts_only"]
