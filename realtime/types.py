"""The ASGI names every signature in `realtime` uses.

Scope    the connection's description: {"type": "websocket", "path": "/ws/chat/lobby/", ...}
Message  one event in either direction: {"type": "websocket.receive", "text": "hi"}
Receive  awaitable that returns the next event from the server (or the channel layer)
Send     awaitable that hands one event to the server
ASGIApp  an ASGI 3 application: `await app(scope, receive, send)`
Headers  HTTP or handshake headers as ASGI carries them: [(b"content-type", b"text/plain")]
Acknowledge  awaitable a worker calls once it has handled a durable message (the layer may then
         forget it); see realtime.worker and the Redis layer's worker queues
"""

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]
Acknowledge = Callable[[], Awaitable[None]]

__all__ = ["ASGIApp", "Acknowledge", "Headers", "Message", "Receive", "Scope", "Send"]
