"""A tiny root application of Channels 1.x-style message consumers for
test_message_consumers_over_daphne.py, served by a real Daphne process (no project app involved).

    websocket  /chat/<room>/   route()s: connect joins Group("chat-<room>"), a text frame is sent
                               to the whole room as "<room>: text"; other paths are refused
    http       /say/<room>/?text=...   a sync message consumer (as a view would) sends the text
                                       to the room with Group(...).send() and answers 202
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import django

django.setup(set_prefix=False)

from realtime.layers import Group  # noqa: E402
from realtime.routing import ProtocolTypeRouter, route  # noqa: E402

ROOM = r"^/chat/(?P<room>[a-z]+)/$"


def ws_connect(message: Any, room: str) -> None:
    Group(f"chat-{room}").add(message.reply_channel)
    message.reply_channel.send({"accept": True})


async def ws_message(message: Any, room: str) -> None:
    await Group(f"chat-{room}").send({"text": f"{room}: {message['text']}"})


def say(message: Any, room: str) -> None:
    text = parse_qs(message["query_string"].decode())["text"][0]
    Group(f"chat-{room}").send({"text": f"{room}: {text}"})  # sync code: done when it returns
    message.reply_channel.send({"status": 202, "headers": [], "content": b""})


application = ProtocolTypeRouter(
    {
        "websocket": [
            route("websocket.connect", ws_connect, path=ROOM),
            route("websocket.receive", ws_message, path=ROOM),
        ],
        "http": [route("http.request", say, path=r"^/say/(?P<room>[a-z]+)/$")],
    }
)
