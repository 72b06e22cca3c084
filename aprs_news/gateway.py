"""The APRS-IS protocol server: what Daphne is for HTTP, this is for the "aprs" scope type.

It logs in to an APRS-IS server over TCP and sends one line

    user N0CALL pass -1 vers Switchboard 0.1 filter t/sm\\r\\n

(passcode -1 is receive-only), logs the server's `# logresp ...` reply, and for each connection
runs the root ASGI application once with the scope

    {"type": "aprs", "server": "rotate.aprs2.net:14580", "callsign": "N0CALL", "filter": "t/sm"}

feeding it `aprs.connect`, one `aprs.packet` per packet line
(`{"type": "aprs.packet", "raw": line, "received": unix_time}`) and `aprs.disconnect` when the
connection ends. Lines starting with `#` are server comments and keep-alives, not packets. Bytes
are decoded leniently (UTF-8, else Latin-1); no line can stop the gateway.

When the connection drops, or stays silent (not even a keep-alive) for `silence_timeout` seconds,
it reconnects with exponential back-off plus jitter, capped. `stop` (SIGTERM/SIGINT in the
management command) ends it cleanly: the application gets `aprs.disconnect` and is awaited.

`replay()` feeds a capture file instead: one line per packet, optionally prefixed with its unix
receive time and a TAB (`1795435200.65<TAB>W1ABC>APRS...`), paced by those times divided by
`speed`, or one line every `interval / speed` seconds when a line has no time.
`embedded_replay` runs settings.APRS_REPLAY_FILE in a loop inside `manage.py serve`, so /news/ is
alive out of the box.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aprs_news import protocol
from aprs_news.parsing import decode_line
from realtime.backoff import Backoff
from realtime.types import ASGIApp, Message

logger = logging.getLogger(__name__)

DEFAULT_PORT = 14580
SOFTWARE = "Switchboard"
SOFTWARE_VERSION = "0.1"
MAX_LINE_BYTES = 8192  # APRS-IS lines are at most ~512 bytes; longer ones are dropped
QUEUE_SIZE = 1000  # packets buffered for a busy application before reading pauses
MAX_REPLAY_GAP = 60.0  # longest pause between two replayed lines, in capture seconds
# Waits between reconnects: 1 s doubling to a minute, +/- 25 % so that many gateways cut off at
# once do not come back in step. Back to 1 s after a connection that delivered packets.
RECONNECT_BACKOFF = Backoff(initial=1.0, maximum=60.0, jitter=0.25)
_TIMESTAMPED_LINE = re.compile(rb"^(\d{9,11}(?:\.\d+)?)\t(.*)$", re.DOTALL)


@dataclass(frozen=True)
class ServerAddress:
    """An APRS-IS server as host and port, parsed from "host:port" (port defaults to 14580)."""

    host: str
    port: int = DEFAULT_PORT

    @classmethod
    def parse(cls, text: str) -> ServerAddress:
        text = text.strip()
        host, _, port = text.rpartition(":") if ":" in text else (text, ":", str(DEFAULT_PORT))
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"APRS-IS server must be host:port, got {text!r}")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def login_line(callsign: str, passcode: str, server_filter: str) -> bytes:
    """The APRS-IS login line; the filter part is left out when there is no filter."""
    line = f"user {callsign} pass {passcode} vers {SOFTWARE} {SOFTWARE_VERSION}"
    if server_filter:
        line += f" filter {server_filter}"
    return (line + "\r\n").encode("ascii", "replace")


class ApplicationConnection:
    """One run of the ASGI application for one feed connection: its scope, event queue and task.

    If the application crashes mid-feed, the error is logged and a fresh instance is started (with
    a new `aprs.connect`) that gets the packets still queued: a bug in a consumer loses the packet
    it failed on, never the feed.
    """

    def __init__(self, application: ASGIApp, scope: dict[str, Any]) -> None:
        self.application = application
        self.scope = scope
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE + 1)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        leftover = [self.queue.get_nowait() for _ in range(self.queue.qsize())]
        self.queue = asyncio.Queue(max(QUEUE_SIZE, len(leftover)) + 1)  # + 1: aprs.connect
        self.queue.put_nowait({"type": protocol.EVENT_CONNECT})
        for event in leftover:
            self.queue.put_nowait(event)
        self.task = asyncio.ensure_future(
            self.application(dict(self.scope), self.queue.get, self._send)
        )

    async def packet(self, raw: str, received: float) -> None:
        """Queue a packet event; waits while the queue is full, restarting a crashed application."""
        event = {"type": protocol.EVENT_PACKET, "raw": raw, "received": received}
        while True:
            if self.task is None or self.task.done():
                self._log_ended()
                await self.start()
            assert self.task is not None
            if self.queue.qsize() < QUEUE_SIZE:
                self.queue.put_nowait(event)
                return
            putting = asyncio.ensure_future(self.queue.put(event))
            done, _ = await asyncio.wait({putting, self.task}, return_when=asyncio.FIRST_COMPLETED)
            if putting in done:
                return
            putting.cancel()  # the application died with a full queue: restart it, then retry

    async def close(self, stall_timeout: float = 10.0) -> None:
        """Send aprs.disconnect after the packets still queued, and wait for the application to
        finish; it is cancelled only if it makes no progress for `stall_timeout` seconds."""
        if self.task is None:
            return
        task, self.task = self.task, None
        disconnect: dict[str, Any] | None = {"type": protocol.EVENT_DISCONNECT}
        stalled_since = time.monotonic()
        while not task.done():
            if disconnect is not None:
                try:
                    self.queue.put_nowait(disconnect)
                    disconnect = None
                except asyncio.QueueFull:
                    pass
            backlog = self.queue.qsize()
            await asyncio.wait({task}, timeout=0.5)
            if self.queue.qsize() < backlog:
                stalled_since = time.monotonic()
            elif time.monotonic() - stalled_since > stall_timeout:
                logger.warning("application stuck for %ss; cancelling it", stall_timeout)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                return
        if not task.cancelled() and task.exception() is not None:
            logger.error("APRS application failed", exc_info=task.exception())

    def _log_ended(self) -> None:
        if self.task is not None and not self.task.cancelled() and self.task.exception():
            logger.error("APRS application failed; restarting it", exc_info=self.task.exception())

    async def _send(self, message: Message) -> None:
        # The aprs protocol carries nothing from the application back to the network (receive-only).
        logger.debug("ignoring message from the APRS application: %r", message.get("type"))


class APRSISGateway:
    """An APRS-IS client that feeds every packet to `application` and keeps itself connected."""

    def __init__(
        self,
        application: ASGIApp,
        server: ServerAddress,
        *,
        callsign: str,
        passcode: str = "-1",
        server_filter: str = "",
        silence_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.application = application
        self.server = server
        self.callsign = callsign
        self.passcode = passcode
        self.server_filter = server_filter
        self.silence_timeout = silence_timeout
        self.connect_timeout = connect_timeout
        self.backoff = backoff or RECONNECT_BACKOFF
        self.connections = 0  # successful TCP connections so far
        self.packets = 0  # packet lines handed to the application so far

    @property
    def scope(self) -> dict[str, Any]:
        return {
            "type": protocol.SCOPE_TYPE,
            "server": str(self.server),
            "callsign": self.callsign,
            "filter": self.server_filter,
        }

    async def run(self, stop: asyncio.Event) -> None:
        """Stay connected until `stop` is set, reconnecting with back-off after each drop."""
        attempt = 0
        while not stop.is_set():
            heard = False
            try:
                heard = await self._session(stop)
            except (OSError, TimeoutError, EOFError) as error:
                logger.warning("APRS-IS %s: %s", self.server, error or type(error).__name__)
            if stop.is_set():
                break
            attempt = 0 if heard else attempt + 1
            delay = self.backoff.delay(attempt)
            logger.info("reconnecting to APRS-IS %s in %.2fs", self.server, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
        logger.info("APRS-IS gateway stopped")

    async def _session(self, stop: asyncio.Event) -> bool:
        """One connection, from login to drop/silence/stop; True if it delivered any packet (so
        a server that only greets and hangs up, refusing the login, keeps the back-off growing)."""
        logger.info("connecting to APRS-IS %s as %s", self.server, self.callsign)
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.server.host, self.server.port, limit=MAX_LINE_BYTES),
            self.connect_timeout,
        )
        self.connections += 1
        heard = False
        app = ApplicationConnection(self.application, self.scope)
        stopping = asyncio.ensure_future(stop.wait())
        try:
            writer.write(login_line(self.callsign, self.passcode, self.server_filter))
            await writer.drain()
            await app.start()
            while True:
                reading = asyncio.ensure_future(reader.readline())
                done, _ = await asyncio.wait(
                    {reading, stopping},
                    timeout=self.silence_timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if reading not in done:
                    reading.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await reading
                    if stopping not in done:
                        logger.warning(
                            "APRS-IS %s silent for %ss; reconnecting",
                            self.server,
                            self.silence_timeout,
                        )
                    return heard
                try:
                    data = reading.result()
                except ValueError:  # longer than MAX_LINE_BYTES: asyncio drops it, we go on
                    logger.debug("dropped an over-long line from %s", self.server)
                    continue
                if not data:
                    logger.warning("APRS-IS %s closed the connection", self.server)
                    return heard
                heard = await self._line(decode_line(data), app) or heard
        finally:
            stopping.cancel()
            await app.close()
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _line(self, line: str, app: ApplicationConnection) -> bool:
        """Hand a packet line to the application (True); log a comment line (False)."""
        if not line.strip():
            return False
        if line.startswith("#"):
            if line.startswith("# logresp"):
                logger.info("APRS-IS %s login reply: %s", self.server, line[2:])
            else:
                logger.debug("APRS-IS %s: %s", self.server, line)
            return False
        self.packets += 1
        await app.packet(line, time.time())
        return True


def read_capture(path: Path) -> list[tuple[float | None, str]]:
    """The lines of a capture file as (capture time or None, text); blank lines are skipped."""
    lines: list[tuple[float | None, str]] = []
    for data in path.read_bytes().splitlines():
        match = _TIMESTAMPED_LINE.match(data)
        stamp = float(match.group(1)) if match else None
        text = decode_line(match.group(2) if match else data)
        if text.strip():
            lines.append((stamp, text))
    return lines


async def replay(
    application: ASGIApp,
    path: Path,
    *,
    stop: asyncio.Event,
    speed: float = 1.0,
    interval: float = 1.0,
    loop: bool = False,
    callsign: str = "N0CALL",
) -> int:
    """Feed a capture file to `application` as one connection per pass; returns packets sent.

    `#` lines are skipped as on a live feed. With `loop`, passes repeat until `stop` is set.
    """
    if speed <= 0:
        raise ValueError(f"replay speed must be positive, got {speed!r}")
    lines = read_capture(path)
    scope = {
        "type": protocol.SCOPE_TYPE,
        "server": f"replay:{path.name}",
        "callsign": callsign,
        "filter": "",
    }
    sent = 0
    while not stop.is_set():
        app = ApplicationConnection(application, scope)
        await app.start()
        previous: float | None = None
        try:
            for stamp, text in lines:
                if stamp is None:
                    pause = interval / speed
                elif previous is None:
                    pause = 0.0  # the first timed line plays at once
                else:
                    pause = min(max(stamp - previous, 0.0), MAX_REPLAY_GAP) / speed
                if stamp is not None:
                    previous = stamp
                if pause:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), pause)
                if stop.is_set():
                    break
                if text.startswith("#"):
                    continue
                await app.packet(text, time.time())
                sent += 1
        finally:
            await app.close()
        if not loop:
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval / speed)
    logger.info("replayed %d packets from %s", sent, path)
    return sent


async def embedded_replay(application: ASGIApp) -> None:
    """The replay `manage.py serve` runs beside Daphne: settings.APRS_REPLAY_FILE in a loop at the
    capture's own pace, until cancelled. An empty setting disables it (returns at once)."""
    from django.conf import settings

    name = getattr(settings, "APRS_REPLAY_FILE", "")
    if not name:
        return
    path = Path(name)
    if not await asyncio.to_thread(path.is_file):
        logger.warning("APRS replay file %s does not exist; /news/ gets no replayed traffic", path)
        return
    logger.info("replaying APRS capture %s in a loop", path)
    await replay(application, path, stop=asyncio.Event(), loop=True, interval=5.0)
