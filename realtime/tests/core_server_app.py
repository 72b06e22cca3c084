"""A tiny root application for test_core_over_daphne.py: the routers, a websocket consumer behind
middleware and a LongPollConsumer, served by a real Daphne process (no project app involved).

    websocket  /ws/<slug:area>/echo/<slug:name>/   nested URLRouter behind BaseMiddleware; echoes
                                                   "area/name/middleware: text"
               /ws/plain/                a plain AsyncConsumer in group "plain": accepts on the
                                         layer event plain.accept, echoes "echo: text"
    http       /poll/                    LongPollConsumer on group "bell": 200 {"rang": n} when woken
               /ring/?n=<int>            group_send to "bell" (wakes every waiting poll), 202
               /status/                  {"waiting": polls waiting now, "threads": thread count,
                                          "plain": plain sockets connected, "echoed": frames
                                          they echoed}
               /plain/?<kind>=<value>    group_send to "plain": accept=1 (plain.accept),
                                         text=T (websocket.send), close=CODE (websocket.close)
"""

from __future__ import annotations

import json
import threading
from typing import Any

import django

django.setup(set_prefix=False)

from django.urls import path  # noqa: E402

from realtime.consumer import AsyncConsumer  # noqa: E402
from realtime.exceptions import StopConsumer  # noqa: E402
from realtime.generic.http import AsyncHttpConsumer, LongPollConsumer, LongPollResponse  # noqa: E402
from realtime.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from realtime.middleware import BaseMiddleware  # noqa: E402
from realtime.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

WAITING = {"polls": 0}
PLAIN = {"connected": 0, "echoed": 0}


class Tagging(BaseMiddleware):
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await super().__call__({**scope, "tag": "middleware"}, receive, send)


class Echo(AsyncWebsocketConsumer):
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        await self.send(
            text_data=f"{kwargs['area']}/{kwargs['name']}/{self.scope['tag']}: {text_data}"
        )


class Bell(LongPollConsumer):
    groups = ["bell"]
    timeout = 30.0

    async def prepare(self, body: bytes) -> LongPollResponse | None:
        WAITING["polls"] += 1
        self.counted = True
        return None

    async def bell_rang(self, event: Any) -> None:
        await self.respond(self.json_response({"rang": event["n"]}))

    async def disconnect(self) -> None:
        if getattr(self, "counted", False):
            WAITING["polls"] -= 1


class Ring(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        number = int(self.scope["query_string"].decode().partition("=")[2] or 0)
        await self.channel_layer.group_send("bell", {"type": "bell.rang", "n": number})
        await self.send_response(202, b"")


class Plain(AsyncConsumer):
    """A WebSocket served with raw ASGI events, written to through the layer in 1.x's shape."""

    async def websocket_connect(self, message: Any) -> None:
        await self.channel_layer.group_add("plain", self.channel_name)
        PLAIN["connected"] += 1

    async def plain_accept(self, message: Any) -> None:
        await self.send({"type": "websocket.accept"})

    async def websocket_receive(self, message: Any) -> None:
        PLAIN["echoed"] += 1
        await self.send({"type": "websocket.send", "text": f"echo: {message.get('text')}"})

    async def websocket_disconnect(self, message: Any) -> None:
        await self.channel_layer.group_discard("plain", self.channel_name)
        PLAIN["connected"] -= 1
        raise StopConsumer()


class TellPlain(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        kind, _, value = self.scope["query_string"].decode().partition("=")
        if kind == "accept":
            event: dict[str, Any] = {"type": "plain.accept"}
        elif kind == "text":
            event = {"type": "websocket.send", "text": value}
        else:
            event = {"type": "websocket.close", "code": int(value)}
        await self.channel_layer.group_send("plain", event)
        await self.send_response(202, b"")


class Status(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        status = {
            "waiting": WAITING["polls"],
            "threads": threading.active_count(),
            "plain": PLAIN["connected"],
            "echoed": PLAIN["echoed"],
        }
        await self.send_response(200, json.dumps(status).encode())


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path("ws/plain/", Plain.as_asgi()),
                path(
                    "ws/<slug:area>/",
                    Tagging(URLRouter([path("echo/<slug:name>/", Echo.as_asgi())])),
                ),
            ]
        ),
        "http": URLRouter(
            [
                path("poll/", Bell.as_asgi()),
                path("ring/", Ring.as_asgi()),
                path("status/", Status.as_asgi()),
                path("plain/", TellPlain.as_asgi()),
            ]
        ),
    }
)
