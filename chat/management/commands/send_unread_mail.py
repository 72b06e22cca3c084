"""`python manage.py send_unread_mail [--every SECONDS]`: e-mail unread mentions and DMs.

Runs chat.mail's sweep once (for cron), or every SECONDS until SIGTERM/SIGINT (a supervised
process, where the web processes run `serve --no-services` and so no embedded sweeper). Running
it beside other sweepers is safe: each due e-mail is taken by one sweep only.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from chat.mail import sweep


class Command(BaseCommand):
    help = "E-mail mentions and direct messages still unread after each reader's delay."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--every",
            type=float,
            default=0,
            help="Sweep every this many seconds until stopped (default: once)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        every = options["every"]
        stop = threading.Event()
        if every > 0:
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stop.set())
        while True:
            sent = sweep()
            if options["verbosity"] >= 2 or (sent and options["verbosity"] >= 1):
                self.stdout.write(f"Sent {sent} e-mail{'s' * (sent != 1)}")
            if every <= 0 or stop.wait(every):
                return
