"""Consumers of the news app.

APRSNewsConsumer serves the "aprs" scope (one instance per gateway connection, see protocol.py for
the events): each packet is parsed; news is recorded (de-duplicated) and pushed to the
`aprs-news` group as an already-encoded frame. What cannot be parsed is counted and logged at
debug level; nothing a packet contains can stop the consumer.

NewsConsumer serves ws/news/: it joins the `aprs-news` group, sends the recent items on connect,
relays live frames, and answers `news.recent` requests (filters by kind, callsign prefix, group).
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from aprs_news import protocol, services
from aprs_news.parsing import UnparseablePacket, decode_line, parse_packet
from realtime.consumer import AsyncConsumer
from realtime.db import database_sync_to_async
from realtime.exceptions import StopConsumer
from realtime.generic.frames import FrameError, FrameLimits, JsonFrameConsumer

logger = logging.getLogger(__name__)

# Packets handled by this process, by outcome: "news" (a new item), "seen_again", "ignored"
# (valid APRS that is not news, e.g. positions), "unparseable", "failed" (could not be stored).
packet_counts: Counter[str] = Counter()
# Old news is pruned after every this many new items (and on each feed connect).
PRUNE_EVERY = 1000


def _received_at(value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(float(value), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return datetime.now(tz=UTC)


class APRSNewsConsumer(AsyncConsumer):
    """Turns APRS-IS packets into news items and live frames for ws/news/.

    Each packet is decoded and routed by kind to its news builder by filter routes on the
    decoded packet's keys (`aprs_news.parsing.NEWS_ROUTES`: bulletins and announcements on
    `format`, weather on `format`/`symbol`, objects, status reports).
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.counts: Counter[str] = Counter()  # this connection's packets, by outcome

    async def aprs_connect(self, event: dict) -> None:
        await self._prune()
        logger.info(
            "APRS feed connected: server=%s callsign=%s filter=%s",
            self.scope.get("server"),
            self.scope.get("callsign"),
            self.scope.get("filter"),
        )

    async def aprs_packet(self, event: dict) -> None:
        outcome = await self._handle_packet(event)
        self.counts[outcome] += 1
        packet_counts[outcome] += 1
        if outcome == "news" and packet_counts["news"] % PRUNE_EVERY == 0:
            await self._prune()

    async def aprs_disconnect(self, event: dict) -> None:
        logger.info(
            "APRS feed from %s disconnected; packets this connection: %s",
            self.scope.get("server"),
            dict(self.counts) or "none",
        )
        raise StopConsumer()

    async def _handle_packet(self, event: dict) -> str:
        raw = event.get("raw", "")
        if isinstance(raw, bytes):
            raw = decode_line(raw)
        if not isinstance(raw, str):
            logger.debug("aprs.packet without a text 'raw': %r", event)
            return "unparseable"
        try:
            news = parse_packet(raw)
        except UnparseablePacket as error:
            logger.debug("unparseable APRS packet: %s", error)
            return "unparseable"
        if news is None:
            return "ignored"
        try:
            recorded = await database_sync_to_async(services.record_news)(
                news, _received_at(event.get("received", time.time()))
            )
        except Exception:
            logger.exception("could not store APRS news from %r", raw[:120])
            return "failed"
        if recorded.created:
            frame = {"type": protocol.FRAME_ITEM, "item": services.item_frame(recorded.item)}
        else:
            frame = services.seen_frame(recorded.item)
        await self._broadcast(frame)
        return "news" if recorded.created else "seen_again"

    async def _prune(self) -> None:
        try:
            deleted = await database_sync_to_async(services.prune_news)(datetime.now(tz=UTC))
        except Exception:
            logger.exception("could not prune old APRS news")
            return
        if deleted:
            logger.info("pruned %d APRS news items not heard for %s", deleted, services.retention())

    async def _broadcast(self, frame: dict) -> None:
        if self.channel_layer is None:
            return
        message = {"type": protocol.GROUP_MESSAGE_FRAME, "text": json.dumps(frame)}
        try:
            await self.channel_layer.group_send(protocol.NEWS_GROUP, message)
        except Exception:  # the item is stored; pages catch up with news.recent on reconnect
            logger.exception("could not push APRS news to %s", protocol.NEWS_GROUP)


class NewsConsumer(JsonFrameConsumer):
    """ws/news/: live APRS news for anyone (no login needed; the page is public). Frame intake
    (size, budget, decoding, error frames) is the core's JsonFrameConsumer."""

    groups = [protocol.NEWS_GROUP]
    frame_types = frozenset({protocol.FRAME_RECENT})
    limits = FrameLimits(max_bytes=protocol.MAX_CLIENT_FRAME_BYTES, rate=5.0, burst=10)

    async def connect(self) -> None:
        await self.accept()
        await self.handle_news_recent({})

    async def news_frame(self, event: dict) -> None:
        await self.send(text_data=event["text"])

    async def handle_news_recent(self, frame: dict) -> None:
        """Answer a `news.recent` request (and the opening frame) with matching items."""
        try:
            kind = services.normalize_kind(str(frame.get("kind", "")))
            prefix = services.normalize_prefix(str(frame.get("prefix", "")))
            group = services.normalize_group(str(frame["group"])) if frame.get("group") else ""
            limit = frame.get("limit", protocol.RECENT_DEFAULT)
            if not isinstance(limit, int) or isinstance(limit, bool) or limit <= 0:
                raise ValueError(f"limit must be a positive integer, got {limit!r}")
        except ValueError as error:
            raise FrameError(protocol.ERROR_BAD_PARAMETER, str(error)) from None
        items = await database_sync_to_async(services.recent_items)(
            [kind] if kind else [], prefix, group, limit
        )
        await self.send_frame(
            {"type": protocol.FRAME_RECENT, "items": [services.item_frame(i) for i in items]}
        )
