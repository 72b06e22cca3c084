"""A tiny root application for test_core_over_daphne.py: the routers, a websocket consumer behind
middleware and a LongPollConsumer, served by a real Daphne process (no project app involved).

    websocket  /ws/<slug:area>/echo/<slug:name>/   nested URLRouter behind BaseMiddleware; echoes
                                                   "area/name/middleware: text"
    http       /poll/                    LongPollConsumer on group "bell": 200 {"rang": n} when woken
               /ring/?n=<int>            group_send to "bell" (wakes every waiting poll), 202
               /status/                  {"waiting": polls waiting now, "threads": thread count}
"""

from __future__ import annotations

import json
import threading
from typing import Any

import django

django.setup(set_prefix=False)

from django.urls import path  # noqa: E402

from realtime.generic.http import AsyncHttpConsumer, LongPollConsumer, LongPollResponse  # noqa: E402
from realtime.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from realtime.middleware import BaseMiddleware  # noqa: E402
from realtime.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

WAITING = {"polls": 0}


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


class Status(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        status = {"waiting": WAITING["polls"], "threads": threading.active_count()}
        await self.send_response(200, json.dumps(status).encode())


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [
                path(
                    "ws/<slug:area>/",
                    Tagging(URLRouter([path("echo/<slug:name>/", Echo.as_asgi())])),
                )
            ]
        ),
        "http": URLRouter(
            [
                path("poll/", Bell.as_asgi()),
                path("ring/", Ring.as_asgi()),
                path("status/", Status.as_asgi()),
            ]
        ),
    }
)
