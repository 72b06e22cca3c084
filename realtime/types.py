"""The ASGI names every signature in `realtime` uses.

Scope    the connection's description: {"type": "websocket", "path": "/ws/chat/lobby/", ...}
Message  one event in either direction: {"type": "websocket.receive", "text": "hi"}
Receive  awaitable that returns the next event from the server (or the channel layer)
Send     awaitable that hands one event to the server
ASGIApp  an ASGI 3 application: `await app(scope, receive, send)`
"""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]
