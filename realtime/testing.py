"""Drive an ASGI application from a test without a server: the same events a server would send.

    communicator = WebsocketCommunicator(application, "/ws/chat/lobby/?last=12")
    connected, subprotocol = await communicator.connect()
    await communicator.send_json_to({"type": "say", "text": "hi"})
    assert await communicator.receive_json_from() == {"type": "said", "text": "hi"}
    await communicator.disconnect()

    response = await HttpCommunicator(application, "GET", "/notifications/poll/").get_response()
    assert response["status"] == 200

The communicators build on asgiref's ApplicationCommunicator: the application runs as a task,
`receive_output()` waits for what it sends (raising asyncio.TimeoutError after `timeout` seconds
and re-raising any exception the application died with), `receive_nothing()` checks it stays quiet.
A path may carry a query string; it goes to `scope["query_string"]`. The application may also be
a consumer class or a list of routes (Channels 1.x's `route()`), as in a router.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote, urlsplit

from asgiref.testing import ApplicationCommunicator as _AsgirefCommunicator

from realtime.routing import as_application
from realtime.types import ASGIApp, Message, Scope

HeaderInput = Iterable[tuple[bytes | str, bytes | str]]


def _encoded_headers(headers: HeaderInput | None) -> list[tuple[bytes, bytes]]:
    def encode(value: bytes | str) -> bytes:
        return value.encode("latin-1") if isinstance(value, str) else value

    return [(encode(name).lower(), encode(value)) for name, value in headers or []]


def _path_scope(path: str) -> dict[str, Any]:
    if not isinstance(path, str):
        raise TypeError(f"Expected a str path, got {type(path).__name__}: {path!r}")
    parts = urlsplit(path)
    return {
        "path": unquote(parts.path),
        "raw_path": parts.path.encode("latin-1", "replace"),
        "query_string": parts.query.encode("latin-1"),
        "root_path": "",
    }


class ApplicationCommunicator(_AsgirefCommunicator):
    """Runs `application` with `scope` and exchanges raw ASGI events with it (asgiref's)."""

    # asgiref's __del__ reads this; a subclass that rejects its arguments before calling
    # __init__ must not turn that into a second, confusing error at garbage collection.
    _future = None

    def __init__(self, application: ASGIApp, scope: Scope) -> None:
        # A list of routes or a consumer class works here as it does in a router.
        super().__init__(as_application(application, type(self).__name__), scope)

    async def send_input(self, message: Message) -> None:
        """Hand an event to the application, as the server would."""
        await super().send_input(message)

    async def receive_output(self, timeout: float = 1) -> Message:
        """The next event the application sent."""
        return await super().receive_output(timeout)

    async def receive_nothing(self, timeout: float = 0.1, interval: float = 0.01) -> bool:
        """True if the application sends nothing within `timeout` seconds."""
        return await super().receive_nothing(timeout, interval)

    async def wait(self, timeout: float = 1) -> None:
        """Wait for the application to return (cancelling it after `timeout`)."""
        await super().wait(timeout)


class WebsocketCommunicator(ApplicationCommunicator):
    """A fake websocket client for one connection to `application` at `path`."""

    def __init__(
        self,
        application: ASGIApp,
        path: str,
        headers: HeaderInput | None = None,
        subprotocols: Iterable[str] | None = None,
        spec_version: str | None = None,
    ) -> None:
        scope: dict[str, Any] = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            **_path_scope(path),
            "headers": _encoded_headers(headers),
            "subprotocols": list(subprotocols or []),
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        if spec_version:
            scope["spec_version"] = spec_version
        super().__init__(application, scope)
        self.response_headers: list[tuple[bytes, bytes]] | None = None

    async def connect(self, timeout: float = 1) -> tuple[bool, Any]:
        """Open the socket: (True, chosen subprotocol) when accepted, (False, close code) when
        refused (1000 when the application gave none)."""
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        if response["type"] != "websocket.accept":
            raise AssertionError(
                f"Expected 'websocket.accept' or 'websocket.close' after connecting, "
                f"but got {response!r}"
            )
        self.response_headers = list(response.get("headers", []))
        return True, response.get("subprotocol")

    async def send_to(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Send one frame to the application: exactly one of text_data or bytes_data."""
        if (text_data is None) == (bytes_data is None):
            raise TypeError("send_to() takes exactly one of text_data or bytes_data")
        if text_data is not None:
            if not isinstance(text_data, str):
                raise TypeError(f"text_data must be str, got {type(text_data).__name__}")
            await self.send_input({"type": "websocket.receive", "text": text_data})
        else:
            if not isinstance(bytes_data, bytes):
                raise TypeError(f"bytes_data must be bytes, got {type(bytes_data).__name__}")
            await self.send_input({"type": "websocket.receive", "bytes": bytes_data})

    async def send_json_to(self, data: Any) -> None:
        """Send `data` as a JSON text frame."""
        await self.send_to(text_data=json.dumps(data))

    async def receive_from(self, timeout: float = 1) -> str | bytes:
        """The payload of the next frame the application sends (str for text, bytes for binary).
        Anything else (a close, for instance) fails the test with what arrived."""
        response = await self.receive_output(timeout)
        if response["type"] != "websocket.send":
            raise AssertionError(f"Expected a 'websocket.send' event, but got {response!r}")
        has_text = response.get("text") is not None
        has_bytes = response.get("bytes") is not None
        if has_text == has_bytes:
            raise AssertionError(f"Expected exactly one of 'text' or 'bytes', got {response!r}")
        return response["text"] if has_text else response["bytes"]

    async def receive_json_from(self, timeout: float = 1) -> Any:
        """The next frame, which must be JSON text, decoded."""
        payload = await self.receive_from(timeout)
        if not isinstance(payload, str):
            raise AssertionError(f"Expected a JSON text frame, got binary {payload!r}")
        return json.loads(payload)

    async def disconnect(self, code: int = 1000, timeout: float = 1) -> None:
        """Close from the client side and wait for the application to finish."""
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


class HttpCommunicator(ApplicationCommunicator):
    """A fake HTTP client for one request to `application`."""

    def __init__(
        self,
        application: ASGIApp,
        method: str,
        path: str,
        body: bytes = b"",
        headers: HeaderInput | None = None,
    ) -> None:
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method.upper(),
            "scheme": "http",
            **_path_scope(path),
            "headers": _encoded_headers(headers),
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
        }
        super().__init__(application, scope)
        if not isinstance(body, bytes):
            raise TypeError(f"body must be bytes, got {type(body).__name__}")
        self.body = body
        self.sent_request = False

    async def send_request(self) -> None:
        """Send the request (its whole body); get_response() does this if it was not done."""
        if not self.sent_request:
            self.sent_request = True
            await self.send_input({"type": "http.request", "body": self.body})

    async def get_response(self, timeout: float = 1) -> dict[str, Any]:
        """Send the request if not sent yet, then collect the whole response:
        {"status": int, "headers": [(bytes, bytes)], "body": bytes}."""
        await self.send_request()
        start = await self.receive_output(timeout)
        if start["type"] != "http.response.start":
            raise AssertionError(f"Expected an 'http.response.start' event, but got {start!r}")
        response: dict[str, Any] = {
            "status": start["status"],
            "headers": list(start.get("headers", [])),
            "body": b"",
        }
        while True:
            chunk = await self.receive_output(timeout)
            if chunk["type"] != "http.response.body":
                raise AssertionError(f"Expected an 'http.response.body' event, but got {chunk!r}")
            response["body"] += chunk.get("body", b"")
            if not chunk.get("more_body", False):
                return response

    async def disconnect(self, timeout: float = 1) -> None:
        """The client goes away: send http.disconnect and wait for the application to finish."""
        await self.send_input({"type": "http.disconnect"})
        await self.wait(timeout)


__all__ = ["ApplicationCommunicator", "HttpCommunicator", "WebsocketCommunicator"]
