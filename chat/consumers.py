"""The chat sockets: `PublicChatConsumer` (``ws/chat/<room>/``) and `AdminChatConsumer`
(``ws/chat/admin/``). The frames they speak are listed in `chat.protocol`; what they change goes
through `chat.services`.

Both forward room events as the pre-encoded text the layer message carries (no per-member JSON
work) and both keep, per room, the `seq` of the last event they delivered: an event that skips
numbers means this socket missed broadcasts (its queue was full), so the gap is read from the
database and sent first (see `chat.delivery` for the shared read and the per-process watch that
finds drops no later event reveals).

Client frames come through the core's frame intake (`realtime.generic.frames`): checked, decoded
and handled in order by one task per socket, beside the consumer's dispatch, so saving a message
(a database write and a broadcast) does not hold up the room events this socket forwards. Nothing
a client sends after the socket was closed (4401, 4403, 4404) reaches a handler.

A private room or DM admits only its joined members (`chat.access`): anyone else is closed with
4403 before joining the room's group, and a member who leaves or is removed is closed with 4403
by the ``chat.access_lost`` event to their account's group (or by the room event that removed
them, whichever comes first).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from typing import Any
from urllib.parse import parse_qs

from django.contrib.auth.models import AnonymousUser

from chat import access, attachments, attention, broadcast, posting, protocol, services
from chat import presence as presence_module
from chat.delivery import catch_up_reader, socket_watch
from chat.history_cache import latest_pages
from chat.models import Room
from chat.presence import presence, presence_announcer
from chat.ratelimit import message_rate_limiter
from chat.services import ChatError
from realtime.batching import DatabaseCalls
from realtime.db import database_sync_to_async
from realtime.generic.frames import FrameLimits, JsonFrameConsumer, encode_frame

logger = logging.getLogger(__name__)

STATS_SECONDS = 10.0


class ChatSocket(JsonFrameConsumer):
    """What both chat sockets share: forwarding room events in order with catch-up from the
    database, and the periodic check. Frame intake (size, budget, decoding, dispatch to
    ``handle_<type>``, error frames) is the core's `JsonFrameConsumer`."""

    limits = FrameLimits(max_bytes=protocol.MAX_FRAME_BYTES)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user: Any = AnonymousUser()
        self.last_seq: dict[str, int] = {}
        self.delivery_lock = asyncio.Lock()

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
        message = broadcast.room_event_message(event)
        try:
            await broadcast.broadcast_room_event(self.channel_layer, message)
        except Exception:
            logger.exception("chat: broadcasting %s seq %s failed", event.room, event.seq)
            if event.room in self.last_seq:
                await self.chat_room_event(message)

    async def publish_audit(self, entry: Any) -> None:
        """Show a committed audit entry on the consoles; it is saved, so a layer failure only
        delays it until a console (re)connects."""
        try:
            await broadcast.broadcast_audit(self.channel_layer, entry)
        except Exception:
            logger.exception("chat: broadcasting audit entry %s failed", entry.pk)

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

    frame_types = protocol.ROOM_CLIENT_TYPES

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.room: Room | None = None  # set on connect, if the room exists
        self.connection_id = secrets.token_hex(8)  # this socket's entry in the room's presence
        self.last_typing = 0.0
        self.heartbeat_at = 0.0
        # The heartbeat (tick, another task) and the leave (disconnect) take turns, and no
        # heartbeat joins after the leave: otherwise a drained socket lingers in presence.
        self.presence_lock = asyncio.Lock()
        self.left = False

    async def connect(self) -> None:
        self.user = self.scope.get("user") or AnonymousUser()
        slug = self.scope["url_route"]["kwargs"]["room"]
        await self.accept()
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        try:
            after, since_seq = _query_int(query, "after"), _query_int(query, "seq")
        except ChatError as error:
            await self.send_frame(error.as_frame())
            after = since_seq = None
        # Join before reading the room's seq, so no event committed in between is missed. The
        # membership check is in the same trip to the database as the history: a non-member is
        # refused before anything of the room is sent (room events that reach the group meanwhile
        # wait for this handler, and a closed socket sends nothing).
        await self.join_groups([protocol.room_group(slug)])
        try:
            opening = await _openings.call(self._opening_frames, slug, after, since_seq)
        except ChatError as error:
            if error.code != protocol.NOT_MEMBER:
                raise
            await self.leave_groups()
            await self.send_error(
                protocol.NOT_MEMBER, "This room is private and you are not a member."
            )
            await self.close(protocol.CLOSE_FORBIDDEN)
            return
        if opening is None:
            await self.leave_groups()
            await self.send_error(protocol.NOT_FOUND, f"There is no room {slug!r}.")
            await self.close(protocol.CLOSE_NO_SUCH_ROOM)
            return
        texts, seq = opening
        async with self.delivery_lock:
            for text in texts:
                await self.send(text_data=text)
            self.last_seq[slug] = seq
        await self._join_presence()
        self.start_background()

    def _opening_frames(
        self, slug: str, after: int | None, since_seq: int | None
    ) -> tuple[list[str], int] | None:
        """The frames a new socket starts with, encoded, and the room seq they bring it up to
        (None when there is no such room), in one trip to the database. The seq is read first,
        so everything committed later arrives as a live event. The latest page comes from the
        process's `latest_pages` (read once per room and seq)."""
        self.room = services.room_for_reader(slug, self.user)
        if self.room is None:
            return None
        access.require_member(self.user, self.room)  # the cached page is the same for everyone
        seq = self.room.seq
        own = {
            **({"last_read": self.room.last_read} if self.user.is_authenticated else {}),
            "seq": seq,
            "user": self.user.get_username() if self.user.is_authenticated else None,
        }
        replay = None
        if after is not None and (
            since_seq is None or seq - since_seq <= protocol.REPLAY_MAX_EVENTS
        ):
            replay = latest_pages.replay_text(self.user, self.room, seq, after, own)
            if replay is None:  # further behind than the latest page reaches
                frame = services.replay_after(self.user, self.room, after, seq)
                replay = None if frame is None else encode_frame({**frame, **own})
        if replay is None:  # a first visit, or too far behind to replay: the latest page
            return [latest_pages.frame_text(self.user, self.room, seq, own)], seq
        texts = [replay]
        if since_seq is not None:
            texts += [
                encode_frame(f)
                for f in services.events_between(self.user, self.room, since_seq, seq)
                if f["type"] != protocol.MESSAGE
            ]
        return texts, seq

    async def _join_presence(self) -> None:
        slug = self.room.slug
        if self.user.is_authenticated:
            name = self.user.get_username()
            before, users = await presence.join_and_list(slug, self.connection_id, name)
            if name not in before:
                presence_announcer.changed(
                    self.channel_layer, slug, private=not self.room.is_public
                )
        else:
            users = await presence.users(slug)
        await self.send_frame({"type": protocol.PRESENCE, "room": slug, "users": users})

    async def tick(self) -> None:
        if self.user.is_authenticated:
            now = time.monotonic()
            if now - self.heartbeat_at >= presence_module.heartbeat_seconds():
                self.heartbeat_at = now
                async with self.presence_lock:
                    if not self.left:
                        username = self.user.get_username()
                        await presence.join(self.room.slug, self.connection_id, username)

    async def disconnect(self, code: int) -> None:
        await super().disconnect(code)
        room = self.room
        if room is None or not self.user.is_authenticated:
            return
        async with self.presence_lock:
            self.left = True
            await presence.leave(room.slug, self.connection_id, self.user.get_username())
        if self.user.get_username() not in await presence.users(room.slug):
            presence_announcer.changed(self.channel_layer, room.slug, private=not room.is_public)

    # --- access ----------------------------------------------------------------------------

    async def chat_room_event(self, event: dict) -> None:
        await super().chat_room_event(event)
        if event.get("revoke") is not None and event["revoke"] == self.user.pk:
            await self.lose_access()

    async def chat_access_lost(self, event: dict) -> None:
        """Layer event to the account's group: the user left or was removed from a room."""
        if self.room is not None and event.get("room") == self.room.slug:
            await self.lose_access()

    async def lose_access(self) -> None:
        """Close with 4403 (after a `not_member` error frame): the user may not read the room."""
        await self.leave_groups()
        await self.send_error(protocol.NOT_MEMBER, "You are no longer a member of this room.")
        await self.close(protocol.CLOSE_FORBIDDEN)

    # --- client frames ---------------------------------------------------------------------

    async def require_rate(self) -> None:
        """Messages, edits and deletions count against one limit per user per room."""
        limiter = message_rate_limiter()
        if not await limiter.hit(f"{self.room.pk}:{self.user.pk}"):
            raise ChatError(protocol.RATE_LIMITED, limiter.limit.describe())

    async def handle_message(self, frame: dict) -> None:
        self.require_login()
        files = attachments.check_ids(frame.get("attachments"))
        services.check_text(frame.get("text"), allow_empty=bool(files))
        await self.require_rate()
        if frame.get("reply_to") is not None:
            services.check_message_id(frame.get("reply_to"), "reply_to")
        # Saved with the messages other sockets of this process post meanwhile (group commit,
        # chat.posting); committed before it is published.
        event = await posting.post(
            self.user,
            self.room,
            frame.get("text"),
            frame.get("client_id") or "",
            reply_to=frame.get("reply_to"),
            attachment_ids=files,
        )
        if event.echo:  # a retry of a message already stored: answer this socket only
            for echo in event.echo:
                await self.send_frame(echo)
            return
        await self.publish(event)
        if self.room.kind == protocol.ROOM_DM or services.mentioned_usernames(event.frame["text"]):
            try:
                await database_sync_to_async(attention.message_posted)(self.user, self.room, event)
            except Exception:
                logger.exception("could not notify mentions of message %s", event.frame["id"])

    async def handle_typing(self, frame: dict) -> None:
        self.require_login()
        now = time.monotonic()
        if now - self.last_typing < protocol.TYPING_INTERVAL_SECONDS:
            return
        self.last_typing = now
        typing = {"type": protocol.TYPING, "room": self.room.slug, "user": self.user.get_username()}
        await broadcast.broadcast_transient(
            self.channel_layer, [protocol.room_group(self.room.slug)], typing
        )

    async def handle_history(self, frame: dict) -> None:
        before = services.check_message_id(frame.get("before"), "before")
        page = await database_sync_to_async(services.history_page)(
            self.user, self.room, before=before
        )
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
            await self.publish_audit(entry)

    async def handle_react(self, frame: dict) -> None:
        await self._react(frame, add=True)

    async def handle_unreact(self, frame: dict) -> None:
        await self._react(frame, add=False)

    async def _react(self, frame: dict, add: bool) -> None:
        """Reactions count against the same per-user limit as messages."""
        self.require_login()
        services.check_message_id(frame.get("id"))
        services.check_emoji(frame.get("emoji"))
        await self.require_rate()
        event = await database_sync_to_async(services.react)(
            self.user, self.room, frame.get("id"), frame.get("emoji"), add
        )
        if event is not None:
            await self.publish(event)

    async def handle_notify(self, frame: dict) -> None:
        """The reader's choice of what of this room notifies them (chat.attention)."""
        self.require_login()
        chosen = attention.check_level(frame.get("level"))
        await database_sync_to_async(attention.set_level)(self.user, self.room, chosen)
        await self.send_frame({"type": protocol.NOTIFY, "room": self.room.slug, "level": chosen})

    async def handle_read(self, frame: dict) -> None:
        self.require_login()
        message_id = services.check_message_id(frame.get("id"))
        await database_sync_to_async(services.mark_read)(self.user, self.room, message_id)


class AdminChatConsumer(ChatSocket):
    """The staff console's socket (``ws/chat/admin/``): every room's events and presence, the
    audit log and message rate; moderators delete, mute and announce. Anonymous visitors are
    closed with 4401, logged-in non-staff with 4403, right after the handshake."""

    frame_types = protocol.CONSOLE_CLIENT_TYPES
    staff_only = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stats_at = 0.0  # when the last stats frame went out
        self.private_messages = False  # may read private rooms (chat.view_private_messages)

    async def connect(self) -> None:
        self.user = self.scope.get("user") or AnonymousUser()
        await self.accept()
        if not self.user.is_authenticated:
            await self.close(protocol.CLOSE_LOGIN_REQUIRED)
            return
        if not self.user.is_staff:
            await self.close(protocol.CLOSE_FORBIDDEN)
            return
        self.private_messages = await database_sync_to_async(access.can_view_private_messages)(
            self.user
        )
        groups = [protocol.ADMIN_GROUP]
        if self.private_messages:
            groups.append(protocol.ADMIN_PRIVATE_GROUP)
        await self.join_groups(groups)
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
        """The console's opening frames. Rooms it reads (public ones; private ones too with
        chat.view_private_messages) come with their seq; private rooms and DMs it may not read
        are only listed with their kind and member count (the policy in docs/apps/chat.md)."""
        rooms = Room.objects.all()
        if not self.private_messages:
            rooms = rooms.filter(kind=protocol.ROOM_PUBLIC)
        seqs = dict(rooms.values_list("slug", "seq"))
        return seqs, [
            {
                "type": protocol.HISTORY,
                "messages": services.recent_messages(self.user),
                "has_more": False,
                "rooms": sorted(seqs),
                "private_rooms": services.private_room_summaries(),
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
            await self.publish_audit(entry)

    async def handle_mute(self, frame: dict) -> None:
        services.check_mute(frame.get("user"), frame.get("room"), frame.get("minutes"))
        entry = await database_sync_to_async(services.mute_user)(
            self.user, frame.get("user"), frame.get("room"), frame.get("minutes")
        )
        await self.publish_audit(entry)

    async def handle_announce(self, frame: dict) -> None:
        """Post, show, then notify. The frame's `client_id` makes a retry safe: an announcement
        already posted is not posted again, and its notification fan-out keeps its id."""
        text, client_id = frame.get("text"), frame.get("client_id") or ""
        events, entry = await database_sync_to_async(services.announce)(self.user, text, client_id)
        for event in events:
            await self.publish(event)
        if entry is not None:
            await self.publish_audit(entry)
        try:
            await database_sync_to_async(services.notify_announcement)(self.user, text, client_id)
        except ChatError:
            raise
        except Exception:
            logger.exception("chat: queueing the notifications of an announcement failed")
            raise ChatError(
                protocol.SERVER_ERROR,
                "The announcement is posted, but notifying users failed. Send it again to retry "
                "the notifications; it will not be posted twice.",
            ) from None


# Sockets that connect together (a reconnect storm after a deploy) read their opening frames in
# one hop to the database thread (every statement there only reads, so each socket's refusal or
# error is its own). One socket alone is served at once, as before.
_openings = DatabaseCalls()
