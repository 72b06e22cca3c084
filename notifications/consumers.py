"""The live side of notifications: the WebSocket stream, the long-poll feed and the fan-out worker.

NotificationConsumer (`ws/notifications/`, see protocol.py for the frames) and NotificationPoll
(`GET notifications/poll/`) both join the user's group `protocol.user_group(user_id)`; services.py
sends `notification.created` and `notification.unread` events there. FanoutConsumer serves the
worker channel `notifications-fanout`: one message there is one batch of notify_all().
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from asgiref.sync import async_to_sync

from notifications import protocol, services
from realtime.consumer import SyncConsumer
from realtime.db import database_sync_to_async
from realtime.generic.frames import INVALID, FrameError, FrameLimits, JsonFrameConsumer
from realtime.generic.http import LongPollConsumer, LongPollResponse


class NotificationConsumer(JsonFrameConsumer):
    """One browser tab's live notification stream.

    Anonymous sockets are accepted and closed at once with 4401. On connect the client gets its
    unread count and who it is (``{"type": "unread", "count": 3, "user": "alice"}``), then every new notification (followed by the new count) as it is created.
    `read` / `read_all` frames mark notifications read; every tab of the user then gets the new
    count. Frame intake (size, budget, decoding, error frames) is the core's JsonFrameConsumer.
    """

    frame_types = frozenset({protocol.READ, protocol.READ_ALL})
    limits = FrameLimits(max_bytes=protocol.MAX_FRAME_BYTES)
    user_id: int | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        await self.accept()
        if user is None or not user.is_authenticated:
            await self.close(protocol.CLOSE_NOT_AUTHENTICATED)
            return
        self.user_id = user.pk
        # Join before counting, so a notification created meanwhile is not missed.
        await self.join_groups([protocol.user_group(user.pk)])
        count = await database_sync_to_async(services.unread_count)(user.pk)
        # The first frame says who this socket is: a page that reconnected after its login
        # changed (another account logged in elsewhere in the browser) notices.
        await self.send_frame(
            {"type": protocol.UNREAD, "count": count, "user": user.get_username()}
        )

    async def handle_read(self, frame: dict[str, Any]) -> None:
        try:
            ids = protocol.parse_ids(frame.get("ids"))
        except ValueError as error:
            raise FrameError(INVALID, f"'read': {error}") from None
        await database_sync_to_async(services.mark_read)(self.user_id, ids)

    async def handle_read_all(self, frame: dict[str, Any]) -> None:
        await database_sync_to_async(services.mark_all_read)(self.user_id)

    async def notification_created(self, event: dict[str, Any]) -> None:
        await self.send_frame(event["notification"])
        await self.send_frame({"type": protocol.UNREAD, "count": event["unread"]})

    async def notification_unread(self, event: dict[str, Any]) -> None:
        await self.send_frame({"type": protocol.UNREAD, "count": event["count"]})


class FanoutConsumer(SyncConsumer):
    """Worker consumer for `notifications-fanout`: each message notifies one batch of users and
    queues the message for the next batch, so a huge fan-out never holds the worker for long and
    never blocks a request or a socket. A malformed message raises ValueError, which the worker
    turns into a logged dead letter."""

    def notifications_fanout(self, message: dict[str, Any]) -> None:
        following = services.run_fanout_batch(message)
        if following is not None:
            async_to_sync(self.channel_layer.send)(protocol.FANOUT_CHANNEL, following)


class NotificationPoll(LongPollConsumer):
    """`GET /notifications/poll/?after=<id>&timeout=<seconds>`: the long-poll notification feed.

    Answers at once with the user's notifications newer than `after` (oldest first, at most
    POLL_MAX_NOTIFICATIONS, `has_more` when more are waiting), else holds the request until one is
    created or `timeout` passes (default 25 s, at most 60), then answers with an empty list:

        {"notifications": [{...}, ...], "cursor": <id to pass as after next>, "has_more": false}

    The user's group is joined before the first query, so a notification created in between wakes
    the request. 401 JSON when not logged in (session or Bearer token); 400 JSON on bad parameters;
    405 for methods other than GET, and 413 for a request body, both before the body is read (the
    core's checks, see realtime.generic.http). Waiting costs no thread.
    """

    allowed_methods = ("GET",)
    user_id: int | None = None
    after: int = 0

    async def prepare(self, body: bytes) -> LongPollResponse | None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            return self.error(
                401, protocol.ERROR_NOT_AUTHENTICATED, "log in or send a Bearer token"
            )
        after = self.query.get("after", "0")
        cursor = protocol.parse_id(after)
        if cursor is None:
            return self.error(
                400,
                protocol.ERROR_BAD_PARAMETER,
                f"after must be a notification id (an integer >= 0), got {after!r}",
            )
        timeout = self.query.get("timeout", "")
        try:
            seconds = float(timeout) if timeout else protocol.POLL_DEFAULT_TIMEOUT
        except ValueError:
            seconds = -1.0
        if not 0 <= seconds <= protocol.POLL_MAX_TIMEOUT:
            return self.error(
                400,
                protocol.ERROR_BAD_PARAMETER,
                f"timeout must be a number of seconds from 0 to {protocol.POLL_MAX_TIMEOUT:g}, "
                f"got {timeout!r}",
            )
        self.user_id = user.pk
        self.after = cursor
        self.timeout = seconds
        return None

    def error(
        self, status: int, code: str, message: str, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> LongPollResponse:
        """A JSON error answer, shaped like the HTTP API's: {"error": {"code", "message"}}."""
        body = {"error": {"code": code, "message": message}}
        return self.json_response(body, status=status, headers=headers)

    def get_groups(self) -> list[str]:
        assert self.user_id is not None, "prepare() sets the user before groups are joined"
        return [protocol.user_group(self.user_id)]

    async def poll(self) -> LongPollResponse | None:
        items, has_more = await database_sync_to_async(services.notifications_after)(
            self.user_id, self.after
        )
        if not items:
            return None
        return self.json_response(
            {"notifications": items, "cursor": items[-1]["id"], "has_more": has_more}
        )

    async def on_timeout(self) -> LongPollResponse:
        return self.json_response({"notifications": [], "cursor": self.after, "has_more": False})

    async def notification_created(self, event: dict[str, Any]) -> None:
        await self.wake()

    async def notification_unread(self, event: dict[str, Any]) -> None:
        """Read-state changes do not answer a poll: the feed carries new notifications only."""
