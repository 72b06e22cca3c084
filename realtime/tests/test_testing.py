"""The communicators, as a specification: the scope they build and what they check."""

from __future__ import annotations

from typing import Any

import pytest

from realtime.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator


class ScopeEcho:
    """A raw ASGI app: accepts a socket (or answers a request) with its scope in the body."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await receive()
        summary = f"{scope['path']}|{scope['query_string'].decode()}|{dict(scope['headers'])}"
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept", "subprotocol": None})
            await send({"type": "websocket.send", "text": summary})
            await receive()
        else:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": summary.encode()})


class Closer:
    """Refuses every socket with close code 4403."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.close", "code": 4403})


async def test_websocket_communicator_splits_path_and_query_string() -> None:
    communicator = WebsocketCommunicator(ScopeEcho(), "/ws/chat%20room/?last=12")
    await communicator.connect()
    assert (await communicator.receive_from()).startswith("/ws/chat room/|last=12|")
    await communicator.disconnect()


async def test_websocket_communicator_sends_lowercased_byte_headers() -> None:
    communicator = WebsocketCommunicator(ScopeEcho(), "/ws/", headers=[("Origin", "http://a")])
    await communicator.connect()
    assert (await communicator.receive_from()).endswith("{b'origin': b'http://a'}")
    await communicator.disconnect()


async def test_websocket_communicator_reports_a_refusal_with_its_code() -> None:
    assert await WebsocketCommunicator(Closer(), "/ws/").connect() == (False, 4403)


async def test_receive_from_fails_clearly_when_the_socket_closes_instead() -> None:
    class AcceptThenClose:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close", "code": 1000})

    communicator = WebsocketCommunicator(AcceptThenClose(), "/ws/")
    await communicator.connect()
    with pytest.raises(AssertionError, match=r"Expected a 'websocket\.send' event"):
        await communicator.receive_from()


async def test_send_to_needs_exactly_one_kind_of_data() -> None:
    communicator = WebsocketCommunicator(ScopeEcho(), "/ws/")
    with pytest.raises(TypeError, match="exactly one of text_data or bytes_data"):
        await communicator.send_to(text_data="a", bytes_data=b"b")
    communicator.stop()


def test_websocket_communicator_refuses_a_non_str_path() -> None:
    with pytest.raises(TypeError, match="Expected a str path"):
        WebsocketCommunicator(ScopeEcho(), b"/ws/")  # type: ignore[arg-type]


async def test_http_communicator_collects_the_whole_response() -> None:
    communicator = HttpCommunicator(ScopeEcho(), "get", "/page/?q=1", headers=[(b"X-A", b"1")])
    response = await communicator.get_response()
    assert communicator.scope["method"] == "GET"
    assert response == {"status": 200, "headers": [], "body": b"/page/|q=1|{b'x-a': b'1'}"}


async def test_application_communicator_reraises_the_application_error() -> None:
    class Broken:
        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            raise LookupError("broken app")

    communicator = ApplicationCommunicator(Broken(), {"type": "test"})
    with pytest.raises(LookupError, match="broken app"):
        await communicator.wait()
