"""`manage.py aprs_gateway`: run the APRS-IS protocol server (or replay a capture) into the root
ASGI application (settings.ASGI_APPLICATION), until SIGTERM/SIGINT. See aprs_news/gateway.py."""

from __future__ import annotations

import asyncio
import dataclasses
import signal
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string

from aprs_news.gateway import RECONNECT_BACKOFF, APRSISGateway, ServerAddress, replay


class Command(BaseCommand):
    help = (
        "Connect to APRS-IS (or replay a capture file) and feed packets to the application's "
        "'aprs' route, reconnecting with back-off, until SIGTERM/SIGINT."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--server", default=settings.APRS_SERVER, help="APRS-IS host:port")
        parser.add_argument("--callsign", default=settings.APRS_CALLSIGN, help="login callsign")
        parser.add_argument(
            "--passcode", default=settings.APRS_PASSCODE, help="APRS-IS passcode (-1: receive-only)"
        )
        parser.add_argument("--filter", default=settings.APRS_FILTER, help="server-side filter")
        parser.add_argument(
            "--silence-timeout",
            type=float,
            default=settings.APRS_SILENCE_TIMEOUT,
            help="reconnect when the server sends nothing (not even a keep-alive) for this long",
        )
        parser.add_argument(
            "--max-backoff",
            type=float,
            default=RECONNECT_BACKOFF.maximum,
            help="longest wait between reconnects, in seconds",
        )
        parser.add_argument("--replay", metavar="FILE", help="replay a capture file instead")
        parser.add_argument(
            "--speed", type=float, default=1.0, help="replay speed factor (10 = ten times faster)"
        )
        parser.add_argument(
            "--interval",
            type=float,
            default=1.0,
            help="replay: seconds between lines that carry no capture time (before --speed)",
        )
        parser.add_argument("--loop", action="store_true", help="replay: start over at the end")

    def handle(self, *args: Any, **options: Any) -> None:
        application = import_string(settings.ASGI_APPLICATION)
        if options["replay"]:
            path = Path(options["replay"])
            if not path.is_file():
                raise CommandError(f"replay file {path} does not exist")
            if options["speed"] <= 0:
                raise CommandError(f"--speed must be positive, got {options['speed']}")

            async def feed(stop: asyncio.Event) -> None:
                sent = await replay(
                    application,
                    path,
                    stop=stop,
                    speed=options["speed"],
                    interval=options["interval"],
                    loop=options["loop"],
                    callsign=options["callsign"],
                )
                self.stdout.write(f"replayed {sent} packets from {path}")

        else:
            try:
                server = ServerAddress.parse(options["server"])
            except ValueError as error:
                raise CommandError(str(error)) from error
            maximum = options["max_backoff"]
            if not 0 < maximum < float("inf"):
                raise CommandError(
                    f"--max-backoff must be a positive number of seconds, got {maximum}"
                )
            backoff = dataclasses.replace(
                RECONNECT_BACKOFF, initial=min(RECONNECT_BACKOFF.initial, maximum), maximum=maximum
            )
            gateway = APRSISGateway(
                application,
                server,
                callsign=options["callsign"],
                passcode=str(options["passcode"]),
                server_filter=options["filter"],
                silence_timeout=options["silence_timeout"],
                backoff=backoff,
            )
            feed = gateway.run
        asyncio.run(self._until_signalled(feed))

    async def _until_signalled(self, feed: Any) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await feed(stop)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
