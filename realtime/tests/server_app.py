"""A tiny root application for the tests that start real server processes (`manage.py serve`,
`manage.py runworker`) without depending on the project's apps.

    http       /hello/ -> "hello"; /broken/ -> raises ValueError; /slow/?seconds=n prints "slow request
               started" and answers "slow done" after n seconds; /static/... -> Django (WhiteNoise serves static files)
    websocket  origin check -> /ws/echo/ (echoes text; "service?" asks about the embedded
               service; "work" round-trips a job through the worker channel; "stream" sends
               "tick <n>" every millisecond until the socket closes; prints
               "echo disconnected <code>" when the application gets websocket.disconnect)
    channel    "server-test-jobs" -> JobConsumer (replies "job.done" to the sender's channel,
               or appends a line to $SERVER_TEST_JOB_LOG, holding a "slow" job until the file
               $SERVER_TEST_JOB_LOG.release exists)
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from django.core.asgi import get_asgi_application
from django.urls import path, re_path

from realtime.consumer import AsyncConsumer
from realtime.generic.websocket import AsyncWebsocketConsumer
from realtime.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter
from realtime.security import AllowedHostsOriginValidator

JOBS_CHANNEL = "server-test-jobs"
SERVICE_STATE = {"running": False}

django_asgi_app = get_asgi_application()


async def hello(scope, receive, send) -> None:
    await receive()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello"})


async def slow(scope, receive, send) -> None:
    await receive()
    query = dict(part.split(b"=", 1) for part in scope["query_string"].split(b"&") if b"=" in part)
    print("slow request started", flush=True)
    await asyncio.sleep(float(query.get(b"seconds", b"1")))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"slow done"})


async def broken(scope, receive, send) -> None:
    raise ValueError("a bug in a view, not a missing route")


class EchoConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.accept()

    async def receive(self, text_data=None, bytes_data=None) -> None:
        if text_data == "service?":
            await self.send(text_data="service running" if SERVICE_STATE["running"] else "none")
        elif text_data == "stream":
            self.streaming = asyncio.ensure_future(self.stream())
        elif text_data == "work":
            await self.channel_layer.send(
                JOBS_CHANNEL, {"type": "job.run", "reply_to": self.channel_name}
            )
        else:
            await self.send(text_data=text_data)

    async def job_done(self, message) -> None:
        await self.send(text_data="job done")

    async def stream(self) -> None:
        # Through the channel layer, so each send happens in a handler, as a chat delivery does.
        for n in range(100_000):
            await self.channel_layer.send(self.channel_name, {"type": "echo.tick", "n": n})
            await asyncio.sleep(0.001)

    async def echo_tick(self, message) -> None:
        await self.send(text_data=f"tick {message['n']}")

    async def disconnect(self, code) -> None:
        streaming = getattr(self, "streaming", None)
        if streaming is not None:
            streaming.cancel()
        print(f"echo disconnected {code}", flush=True)


class JobConsumer(AsyncConsumer):
    async def job_run(self, message) -> None:
        if "reply_to" in message:
            await self.channel_layer.send(message["reply_to"], {"type": "job.done"})
            return
        log = Path(os.environ["SERVER_TEST_JOB_LOG"])
        with log.open("a") as out:
            out.write(f"start {message['name']}\n")
        if message.get("slow"):
            release = Path(f"{log}.release")
            while not release.exists():
                await asyncio.sleep(0.02)
        with log.open("a") as out:
            out.write(f"end {message['name']}\n")


async def heartbeat(application) -> None:
    """An embedded service: marks itself running, and says so when it is cancelled."""
    SERVICE_STATE["running"] = True
    print("heartbeat service started", flush=True)
    try:
        await asyncio.Future()
    except asyncio.CancelledError:
        print("heartbeat service cancelled", flush=True)
        raise


application = ProtocolTypeRouter(
    {
        "http": URLRouter(
            [
                path("hello/", hello),
                path("broken/", broken),
                path("slow/", slow),
                re_path(r"^static/", django_asgi_app),
            ]
        ),
        "websocket": AllowedHostsOriginValidator(
            URLRouter([path("ws/echo/", EchoConsumer.as_asgi())])
        ),
        "channel": ChannelNameRouter({JOBS_CHANNEL: JobConsumer.as_asgi()}),
    }
)
