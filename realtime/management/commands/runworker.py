"""`python manage.py runworker CHANNEL [CHANNEL ...]`: serve "channel" routes from a channel layer.

Runs a `realtime.worker.Worker` on the root application (settings.ASGI_APPLICATION, or
``--application dotted.path``) for the named channels of its ChannelNameRouter (``--all``: every
channel it routes). SIGTERM or SIGINT stops it once the message in hand is finished (exit code 0);
a second SIGINT (Ctrl-C again) abandons that message and exits at once (exit code 1). Repeated
SIGTERMs (a supervisor signalling the whole process group) do not cut the message short.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils.module_loading import import_string

from realtime.layers import DEFAULT_CHANNEL_LAYER, get_channel_layer
from realtime.types import ASGIApp
from realtime.worker import Worker, channel_route_names

logger = logging.getLogger("realtime.worker")


def load_application(dotted_path: str | None) -> ASGIApp:
    """The ASGI application at `dotted_path` (default settings.ASGI_APPLICATION)."""
    path = dotted_path or getattr(settings, "ASGI_APPLICATION", None)
    if not path:
        raise CommandError("No ASGI application: set ASGI_APPLICATION or pass --application")
    try:
        return import_string(path)
    except ImportError as error:
        raise CommandError(f"Cannot import the ASGI application {path!r}: {error}") from error


class Command(BaseCommand):
    help = "Serve the root application's channel routes (ChannelNameRouter) from the channel layer."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("channels", nargs="*", help="Channel names to listen on")
        parser.add_argument(
            "--all",
            action="store_true",
            help="Listen on every channel the application's ChannelNameRouter routes",
        )
        parser.add_argument(
            "--layer",
            default=DEFAULT_CHANNEL_LAYER,
            help="Channel layer alias to use (default: %(default)s)",
        )
        parser.add_argument(
            "--application",
            default=None,
            help="Dotted path to the ASGI application (default: settings.ASGI_APPLICATION)",
        )
        parser.add_argument(
            "--max-retries",
            type=int,
            default=None,
            help="ConsumeLater re-queues before a dead letter "
            "(default: settings.REALTIME_CONSUME_LATER_MAX_RETRIES)",
        )
        parser.add_argument(
            "--dead-letter-channel",
            default=None,
            help="Also send dead letters to this channel as 'dead.letter' messages",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        application = load_application(options["application"])
        known = channel_route_names(application)
        channels: list[str] = list(dict.fromkeys(options["channels"]))
        if options["all"]:
            channels = list(dict.fromkeys([*channels, *known]))
        if not channels:
            raise CommandError(
                f"Name the channels to listen on, or pass --all; the application's "
                f"ChannelNameRouter serves {known}"
            )
        unknown = [channel for channel in channels if channel not in known]
        if unknown:
            raise CommandError(
                f"No channel route for {', '.join(map(repr, unknown))}: the application's "
                f"ChannelNameRouter serves {known}"
            )
        layer = get_channel_layer(options["layer"])
        if layer is None:
            raise CommandError(
                f"No channel layer {options['layer']!r}: CHANNEL_LAYERS has "
                f"{sorted(getattr(settings, 'CHANNEL_LAYERS', {}))}"
            )
        try:
            worker = Worker(
                application,
                channels,
                layer,
                max_retries=options["max_retries"],
                dead_letter_channel=options["dead_letter_channel"],
            )
        except ValueError as error:
            raise CommandError(str(error)) from error
        if options["verbosity"] >= 1:
            self.stdout.write(f"Running worker for channels {channels}")
        if not asyncio.run(self._serve(worker, layer)):
            raise CommandError(
                "Worker interrupted by a second SIGINT before its messages in hand were finished"
            )

    async def _serve(self, worker: Worker, layer: Any) -> bool:
        """Run `worker` until a signal stops it; False when a second SIGINT forced the stop."""
        loop = asyncio.get_running_loop()
        running = asyncio.ensure_future(worker.run())
        forced = False

        def on_signal(signum: int) -> None:
            nonlocal forced
            name = signal.Signals(signum).name
            if not worker.stopping:
                logger.info("%s: stopping after the messages in hand", name)
                worker.stop()
            elif signum == signal.SIGINT:
                logger.warning("SIGINT again: abandoning the messages in hand")
                forced = True
                running.cancel()
            else:
                logger.info("%s again: still finishing the messages in hand", name)

        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await running
        except asyncio.CancelledError:
            if not forced:
                raise
        finally:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
            close = getattr(layer, "close", None)
            if close is not None:
                await close()
        if worker.dead_letters:
            logger.warning("Worker stopped with %d dead letters", len(worker.dead_letters))
        return not forced
