"""The chat sockets: `PublicChatConsumer` (``ws/chat/<room>/``) and `AdminChatConsumer`
(``ws/chat/admin/``). The frames they speak are listed in `chat.protocol`; what they change goes
through `chat.services`.

Both forward room events as the pre-encoded text the layer message carries (no per-member JSON
work) and both keep, per room, the `seq` of the last event they delivered: an event that skips
numbers means this socket missed broadcasts (its queue was full), so the gap is read from the
database and sent first (see `chat.delivery` for the shared read and the per-process watch that
finds drops no later event reveals).

Client frames are handled in order by one task per socket, beside the consumer's dispatch: saving
a message (a database write and a broadcast) does not hold up the room events this socket
forwards. Without that, the socket of a member who posts again as soon as the room shows the last
post forwarded about one room event per post it made, fell ever further behind the room, and
ended up catching up from the database.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

from django.contrib.auth.models import AnonymousUser

from chat import presence as presence_module
from chat import protocol, services
from chat.delivery import catch_up_reader, socket_watch
from chat.models import Room
from chat.presence import presence, presence_announcer
from chat.ratelimit import message_rate_limiter
from chat.services import ChatError
from realtime.db import database_sync_to_async
from realtime.generic.websocket import AsyncWebsocketConsumer

logger = logging.getLogger(__name__)

STATS_SECONDS = 10.0


class ChatSocket(AsyncWebsocketConsumer):
    """What both chat sockets share: frame parsing and errors, forwarding room events in order
    with catch-up from the database, and the periodic check."""

    client_types: frozenset[str] = frozenset()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user: Any = AnonymousUser()
        self.last_seq: dict[str, int] = {}
        self.delivery_lock = asyncio.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.frames: asyncio.Queue[tuple[str | None, bytes | None]] = asyncio.Queue()
        self.frame_task: asyncio.Task[None] | None = None

    # --- sending ---------------------------------------------------------------------------

    async def send_frame(self, frame: dict) -> None:
        await self.send(text_data=protocol.encode(frame))

    async def send_error(self, code: str, detail: str) -> None:
        await self.send_frame({"type": protocol.ERROR, "code": code, "detail": detail})

    # --- receiving -------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Queue a client frame for this socket's frame task (see `handle_frame`), so that the
        consumer goes on forwarding room events while the frame is handled."""
        self.frames.put_nowait((text_data, bytes_data))
        if self.frame_task is None:
            self.frame_task = asyncio.ensure_future(self._handle_frames())

    async def _handle_frames(self) -> None:
        while True:
            text_data, bytes_data = await self.frames.get()
            try:
                await self.handle_frame(text_data, bytes_data)
            except Exception:
                logger.exception("chat: handling a client frame failed")
            finally:
                self.frames.task_done()

    async def finish_frames(self) -> None:
        """Handle the frames received before the client left, then stop the frame task."""
        if self.frame_task is None:
            return
        try:
            await self.frames.join()
        finally:
            self.frame_task.cancel()

    async def handle_frame(self, text_data: str | None, bytes_data: bytes | None) -> None:
        """Check and decode one client frame, then run `handle_<type>`; a ChatError becomes an
        error frame and the socket stays open, except for a frame over MAX_FRAME_BYTES."""
        size = len(bytes_data) if bytes_data is not None else len((text_data or "").encode())
        if size > protocol.MAX_FRAME_BYTES:
            await self.send_error(
                protocol.TOO_LARGE,
                f"A frame has at most {protocol.MAX_FRAME_BYTES} bytes, this one {size}.",
            )
            await self.close(protocol.CLOSE_TOO_LARGE)
            return
        if text_data is None:
            await self.send_error(protocol.BAD_JSON, "Frames are JSON text, not binary.")
            return
        try:
            frame = json.loads(text_data)
        except ValueError:
            await self.send_error(protocol.BAD_JSON, "The frame is not valid JSON.")
            return
        if not isinstance(frame, dict):
            await self.send_error(protocol.BAD_JSON, "A frame is a JSON object with a 'type'.")
            return
        frame_type = frame.get("type")
        if not isinstance(frame_type, str) or frame_type not in self.client_types:
            await self.send_error(
                protocol.UNKNOWN_TYPE,
                f"Unknown frame type {frame_type!r}; expected one of {sorted(self.client_types)}.",
            )
            return
        try:
            await getattr(self, f"handle_{frame_type}")(frame)
        except ChatError as error:
            await self.send_frame(error.as_frame())
        except Exception:
            # A database or layer failure: say so and keep the socket; the client may retry.
            logger.exception("chat: handling a %r frame failed", frame_type)
            await self.send_error(protocol.SERVER_ERROR, "Something went wrong; please retry.")

    def require_login(self) -> None:
        if not self.user.is_authenticated:
            raise ChatError(protocol.LOGIN_REQUIRED, "Log in to take part.")

    # --- room events from the layer --------------------------------------------------------

    async def chat_room_event(self, event: dict) -> None:
        """A lasting room event: forward its text in `seq` order, filling any gap first."""
        room, seq = event["room"], event["seq"]
        async with self.delivery_lock:
            last = self.last_seq.get(room)
            if last is None:
                self.last_seq[room] = seq
                await self.send(text_data=event["text"])
                return
            if seq <= last:
                return
            if seq > last + 1:
                try:
                    await self._catch_up(room, seq - 1)
                except Exception:
                    # Leave last_seq where it is: the next event (or SocketWatch) retries the
                    # gap, this event included, from the database.
                    logger.exception("chat: catching up %s after seq %s failed", room, last)
                    return
            await self.send(text_data=event["text"])
            self.last_seq[room] = seq

    async def publish(self, event: services.RoomEvent) -> None:
        """Broadcast a committed event. If the layer fails, this socket still shows it (the
        others catch up from the database when the next event reaches them)."""
        message = services.room_event_message(event)
        try:
            await services.broadcast_room_event(self.channel_layer, message)
        except Exception:
            logger.exception("chat: broadcasting %s seq %s failed", event.room, event.seq)
            if event.room in self.last_seq:
                await self.chat_room_event(message)

    async def chat_transient(self, event: dict) -> None:
        await self.send(text_data=event["text"])

    async def _catch_up(self, room_slug: str, upto_seq: int) -> None:
        """Send the events of `room_slug` after the last delivered one up to `upto_seq`."""
        texts = await catch_up_reader.frames(room_slug, self.last_seq[room_slug], upto_seq)
        for text in texts:
            await self.send(text_data=text)
        self.last_seq[room_slug] = upto_seq

    # --- periodic work ---------------------------------------------------------------------

    def start_background(self) -> None:
        """Join the process's SocketWatch (catch-up after drops, tick())."""
        self.loop = asyncio.get_running_loop()
        socket_watch.add(self)

    async def catch_up_to(self, current: dict[str, int]) -> None:
        """Catch up every followed room whose current seq (from the database) is ahead."""
        async with self.delivery_lock:
            for room, seq in current.items():
                if room in self.last_seq and seq > self.last_seq[room]:
                    await self._catch_up(room, seq)

    async def tick(self) -> None:
        """Periodic work of this socket, every CHECK_SECONDS."""

    async def disconnect(self, code: int) -> None:
        socket_watch.discard(self)
        await self.finish_frames()


def _query_int(query: dict[str, list[str]], name: str) -> int | None:
    values = query.get(name)
    if not values:
        return None
    try:
        value = int(values[-1])
    except ValueError:
        raise ChatError(
            protocol.INVALID, f"'{name}' must be a message id, got {values[-1]!r}."
        ) from None
    if value < 0:
        raise ChatError(protocol.INVALID, f"'{name}' must not be negative, got {value}.")
    return value


class PublicChatConsumer(ChatSocket):
    """One room's socket (``ws/chat/<room>/``): anyone may read, logged-in users take part.

    Connect: ``history`` (latest page, or ``?after=<id>``: exactly the messages since), then
    ``presence``. A room that does not exist: an error frame and close 4404.
    """

    client_types = protocol.ROOM_CLIENT_TYPES

    async def connect(self) -> None:
        self.user = self.scope.get("user") or AnonymousUser()
        slug = self.scope["url_route"]["kwargs"]["room"]
        self.room: Room | None = None
        self.connection_id = secrets.token_hex(8)
        self.last_typing = 0.0
        await self.accept()
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        try:
            after, since_seq = _query_int(query, "after"), _query_int(query, "seq")
        except ChatError as error:
            await self.send_frame(error.as_frame())
            after = since_seq = None
        # Join before reading the room's seq, so no event committed in between is missed.
        await self.join_groups([protocol.room_group(slug)])
        opening = await database_sync_to_async(self._opening_frames)(slug, after, since_seq)
        if opening is None:
            await self.leave_groups()
            await self.send_error(protocol.NOT_FOUND, f"There is no room {slug!r}.")
            await self.close(protocol.CLOSE_NO_SUCH_ROOM)
            return
        frames, seq = opening
        async with self.delivery_lock:
            for frame in frames:
                await self.send_frame(frame)
            self.last_seq[slug] = seq
        await self._join_presence()
        self.start_background()

    def _opening_frames(
        self, slug: str, after: int | None, since_seq: int | None
    ) -> tuple[list[dict], int] | None:
        """The frames a new socket starts with and the room seq they bring it up to (None when
        there is no such room), in one trip to the database. The seq is read first, so
        everything committed later arrives as a live event."""
        self.room = services.get_room(slug)
        if self.room is None:
            return None
        seq = self.room.seq
        if after is None:
            frames = [services.history_page(self.room, upto_seq=seq)]
        else:
            frames = services.replay_after(self.room, after, seq)
            if since_seq is not None:
                frames += [
                    f
                    for f in services.events_between(self.room, since_seq, seq)
                    if f["type"] != protocol.MESSAGE
                ]
        if self.user.is_authenticated:
            frames[0]["last_read"] = services.last_read_id(self.user, self.room)
        frames[0]["seq"] = seq
        return frames, seq

    async def _join_presence(self) -> None:
        slug = self.room.slug
        if self.user.is_authenticated:
            before = await presence.users(slug)
            await presence.join(slug, self.connection_id, self.user.get_username())
            if self.user.get_username() not in before:
                presence_announcer.changed(self.channel_layer, slug)
        users = await presence.users(slug)
        await self.send_frame({"type": protocol.PRESENCE, "room": slug, "users": users})

    async def tick(self) -> None:
        if self.user.is_authenticated:
            now = time.monotonic()
            if now - getattr(self, "heartbeat_at", 0.0) >= presence_module.heartbeat_seconds():
                self.heartbeat_at = now
                await presence.join(self.room.slug, self.connection_id, self.user.get_username())

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        room = getattr(self, "room", None)
        if room is None or not self.user.is_authenticated or not hasattr(self, "connection_id"):
            return
        await presence.leave(room.slug, self.connection_id, self.user.get_username())
        if self.user.get_username() not in await presence.users(room.slug):
            presence_announcer.changed(self.channel_layer, room.slug)

    # --- client frames ---------------------------------------------------------------------

    async def require_rate(self) -> None:
        """Messages, edits and deletions count against one limit per user per room."""
        limiter = message_rate_limiter()
        if not await limiter.hit(f"{self.room.pk}:{self.user.pk}"):
            raise ChatError(protocol.RATE_LIMITED, limiter.limit.describe())

    async def handle_message(self, frame: dict) -> None:
        self.require_login()
        services.check_text(frame.get("text"))
        await self.require_rate()
        event = await database_sync_to_async(services.post_message)(
            self.user, self.room, frame.get("text"), frame.get("client_id") or ""
        )
        await self.publish(event)
        if services.mentioned_usernames(event.frame["text"]):
            try:
                await database_sync_to_async(services.notify_mentions)(self.user, event)
            except Exception:
                logger.exception("could not notify mentions of message %s", event.frame["id"])

    async def handle_typing(self, frame: dict) -> None:
        self.require_login()
        now = time.monotonic()
        if now - self.last_typing < protocol.TYPING_INTERVAL_SECONDS:
            return
        self.last_typing = now
        typing = {"type": protocol.TYPING, "room": self.room.slug, "user": self.user.get_username()}
        await services.broadcast_transient(
            self.channel_layer, [protocol.room_group(self.room.slug)], typing
        )

    async def handle_history(self, frame: dict) -> None:
        before = services.check_message_id(frame.get("before"), "before")
        page = await database_sync_to_async(services.history_page)(self.room, before=before)
        await self.send_frame(page)

    async def handle_edit(self, frame: dict) -> None:
        self.require_login()
        services.check_message_id(frame.get("id"))
        services.check_text(frame.get("text"))
        await self.require_rate()
        event = await database_sync_to_async(services.edit_message)(
            self.user, self.room, frame.get("id"), frame.get("text")
        )
        await self.publish(event)

    async def handle_delete(self, frame: dict) -> None:
        self.require_login()
        services.check_message_id(frame.get("id"))
        await self.require_rate()
        event, entry = await database_sync_to_async(services.delete_message)(
            self.user, frame.get("id"), self.room
        )
        await self.publish(event)
        if entry is not None:
            await services.broadcast_audit(self.channel_layer, entry)

    async def handle_read(self, frame: dict) -> None:
        self.require_login()
        message_id = services.check_message_id(frame.get("id"))
        await database_sync_to_async(services.mark_read)(self.user, self.room, message_id)


class AdminChatConsumer(ChatSocket):
    """The staff console's socket (``ws/chat/admin/``): every room's events and presence, the
    audit log and message rate; moderators delete, mute and announce. Anonymous visitors are
    closed with 4401, logged-in non-staff with 4403, right after the handshake."""

    client_types = protocol.CONSOLE_CLIENT_TYPES

    async def connect(self) -> None:
        self.user = self.scope.get("user") or AnonymousUser()
        await self.accept()
        if not self.user.is_authenticated:
            await self.close(protocol.CLOSE_LOGIN_REQUIRED)
            return
        if not self.user.is_staff:
            await self.close(protocol.CLOSE_FORBIDDEN)
            return
        await self.join_groups([protocol.ADMIN_GROUP])
        seqs, frames = await database_sync_to_async(self._opening_frames)()
        async with self.delivery_lock:
            for frame in frames:
                await self.send_frame(frame)
            self.last_seq.update(seqs)
        users = await presence.users_in(seqs)
        for room, names in users.items():
            await self.send_frame({"type": protocol.PRESENCE, "room": room, "users": names})
        self.stats_at = time.monotonic()
        self.start_background()

    def _opening_frames(self) -> tuple[dict[str, int], list[dict]]:
        seqs = dict(Room.objects.values_list("slug", "seq"))
        return seqs, [
            {
                "type": protocol.HISTORY,
                "messages": services.recent_messages(),
                "has_more": False,
                "rooms": sorted(seqs),
            },
            {"type": protocol.AUDIT, "entries": services.recent_audit()},
            self._stats_frame(),
        ]

    @staticmethod
    def _stats_frame() -> dict:
        return {"type": protocol.STATS, "messages_per_minute": services.messages_per_minute()}

    async def tick(self) -> None:
        now = time.monotonic()
        if now - self.stats_at >= STATS_SECONDS:
            self.stats_at = now
            await self.send_frame(await database_sync_to_async(self._stats_frame)())

    async def handle_delete(self, frame: dict) -> None:
        services.check_message_id(frame.get("id"))
        event, entry = await database_sync_to_async(services.delete_message)(
            self.user, frame.get("id")
        )
        await self.publish(event)
        if entry is not None:
            await services.broadcast_audit(self.channel_layer, entry)

    async def handle_mute(self, frame: dict) -> None:
        services.check_mute(frame.get("user"), frame.get("room"), frame.get("minutes"))
        entry = await database_sync_to_async(services.mute_user)(
            self.user, frame.get("user"), frame.get("room"), frame.get("minutes")
        )
        await services.broadcast_audit(self.channel_layer, entry)

    async def handle_announce(self, frame: dict) -> None:
        services.check_text(frame.get("text"))
        events, entry = await database_sync_to_async(services.announce)(
            self.user, frame.get("text")
        )
        for event in events:
            await self.publish(event)
        await services.broadcast_audit(self.channel_layer, entry)
