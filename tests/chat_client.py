"""A chat room client for the cross-process tests, speaking chat/protocol.py over a real socket.

It behaves like the browser's static/js/socket.js: when the connection drops it reconnects by
itself with back-off, asking for `?after=<last id it saw>` so the server replays what it missed.
It records what a user would notice: every message id in arrival order, any id seen twice, any
room event that arrives out of order.

    client = ChatClient(server.ws_url, "lobby", session_key, origin=server.url, name="ann")
    await client.start()
    await client.say("hello")
    await client.wait_until(lambda c: len(c.ids) == 1, what="hello")  # AssertionError on timeout
    await client.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from typing import Any

import websockets
import websockets.exceptions

from chat import protocol

RECONNECT_MIN_DELAY = 0.1
RECONNECT_MAX_DELAY = 1.0


class ChatClient:
    """One user's socket on one room, reconnecting with `?after=` (see module docstring)."""

    def __init__(
        self, ws_base: str, room: str, session_key: str, *, origin: str, name: str = "client"
    ) -> None:
        self.ws_base = ws_base
        self.room = room
        self.session_key = session_key
        self.origin = origin
        self.name = name
        self.ids: list[int] = []  # message ids, in the order they arrived
        self.frames: dict[int, dict[str, Any]] = {}
        self.duplicates: list[int] = []
        self.out_of_order: list[tuple[int, int]] = []  # (seq seen, after seq)
        self.errors: list[dict[str, Any]] = []
        self.present: list[str] = []  # the room's users, as the last presence frame listed them
        # This client's messages the server acknowledged (their frame came back, live or in a
        # replay): client_id -> message id.
        self.acknowledged: dict[str, int] = {}
        self.close_codes: list[int | None] = []
        self.connects = 0
        self.last_id = 0
        self.last_seq = 0
        self._sent = 0
        # Like the page's newClientId(): unique per message, also across several clients of one
        # user (the server saves one message per user, room and client_id).
        self._client_prefix = f"{name}-{uuid.uuid4().hex[:8]}"
        self._socket: Any = None
        self._connected = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        url = f"{self.ws_base}/ws/chat/{self.room}/"
        return f"{url}?after={self.last_id}" if self.connects else url

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self, timeout: float = 15.0) -> None:
        self._task = asyncio.create_task(self._run(), name=f"chat-client-{self.name}")
        await self.wait_connected(timeout)

    async def wait_connected(self, timeout: float = 15.0) -> None:
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def _run(self) -> None:
        delay = RECONNECT_MIN_DELAY
        while not self._stopping:
            try:
                async with websockets.connect(
                    self.url,
                    origin=self.origin,
                    additional_headers={"Cookie": f"sessionid={self.session_key}"},
                    open_timeout=5,
                    max_size=None,
                ) as socket:
                    self._socket = socket
                    self.connects += 1
                    self._connected.set()
                    delay = RECONNECT_MIN_DELAY
                    async for raw in socket:
                        self._handle(json.loads(raw))
                    self.close_codes.append(socket.close_code)
            except (OSError, TimeoutError, websockets.exceptions.WebSocketException) as error:
                code = getattr(getattr(error, "rcvd", None), "code", None)
                self.close_codes.append(code)
            finally:
                self._socket = None
                self._connected.clear()
            if self._stopping:
                break
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_DELAY)

    def _handle(self, frame: dict[str, Any]) -> None:
        kind = frame.get("type")
        if kind == protocol.HISTORY:
            for message in frame.get("messages", []):
                self._message(message)
        elif kind == protocol.MESSAGE:
            self._message(frame)
        elif kind == protocol.ERROR:
            self.errors.append(frame)
        elif kind == protocol.PRESENCE:
            self.present = frame.get("users", [])

    def _message(self, message: dict[str, Any]) -> None:
        message_id = message["id"]
        client_id = message.get("client_id") or ""
        if client_id.startswith(f"{self._client_prefix}-"):
            self.acknowledged[client_id] = message_id
        if message_id in self.frames:
            self.duplicates.append(message_id)
            return
        seq = message.get("seq")
        if isinstance(seq, int):
            if seq <= self.last_seq:
                self.out_of_order.append((seq, self.last_seq))
            self.last_seq = max(self.last_seq, seq)
        self.frames[message_id] = message
        self.ids.append(message_id)
        self.last_id = max(self.last_id, message_id)

    async def say(self, text: str) -> bool:
        """Send a chat message if connected now; False when the socket is down (not sent)."""
        socket = self._socket
        if socket is None:
            return False
        self._sent += 1
        frame = {
            "type": protocol.MESSAGE,
            "text": text,
            "client_id": f"{self._client_prefix}-{self._sent}",
        }
        try:
            await socket.send(json.dumps(frame))
        except websockets.exceptions.WebSocketException:
            return False
        return True

    async def drop(self) -> None:
        """Cut the connection without a closing handshake, as a network failure would; the
        client reconnects by itself with `?after=`."""
        socket = self._socket
        if socket is not None:
            socket.transport.abort()

    async def send_raw(self, data: str) -> None:
        if self._socket is None:
            raise RuntimeError(f"{self.name} is not connected")
        await self._socket.send(data)

    def texts(self) -> list[str]:
        return [self.frames[message_id]["text"] for message_id in self.ids]

    async def wait_until(
        self,
        condition: Callable[[ChatClient], bool],
        timeout: float = 20.0,
        what: str | Callable[[ChatClient], str] = "",
    ) -> bool:
        """Wait until `condition(self)` holds; on timeout fail the test, saying `what` was
        awaited (a string, or a function of the client for what is still missing), so a slow
        server and a lost message both end here with a clear message, not later at a comparison
        that hides which it was. Returns True, for callers that assert it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition(self):
                return True
            await asyncio.sleep(0.05)
        if condition(self):
            return True
        described = what(self) if callable(what) else what
        raise AssertionError(
            f"{self.name}: still waiting after {timeout:g} s"
            + (f" for {described}" if described else "")
            + f" (connects: {self.connects}, close codes: {self.close_codes}, "
            f"messages seen: {len(self.ids)}, error frames: {self.errors[:3]})"
        )

    async def stop(self) -> None:
        self._stopping = True
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(self._task, 5)


def create_sessions(server: Any, usernames: list[str], staff: bool = False) -> dict[str, str]:
    """{username: session key}: `LiveServer.create_sessions` (kept here for the chat tests)."""
    return server.create_sessions(usernames, staff=staff)


def clients_across_processes(server: Any, room: str, sessions: dict[str, str]) -> list[ChatClient]:
    """One ChatClient per session, dealt round-robin over the server's Daphne processes."""
    ports = server.ports
    return [
        ChatClient(
            f"ws://127.0.0.1:{ports[i % len(ports)]}",
            room,
            session,
            origin=f"http://127.0.0.1:{ports[i % len(ports)]}",
            name=name,
        )
        for i, (name, session) in enumerate(sessions.items())
    ]


def create_room(server: Any, slug: str) -> None:
    server.shell(
        "from chat.models import Room\n"
        f"Room.objects.get_or_create(slug={slug!r}, defaults={{'title': {slug!r}}})\n"
    )


def room_message_ids(server: Any, slug: str) -> list[int]:
    """Ids of every message saved in the room, oldest first (what clients must end up with)."""
    code = (
        "import json\n"
        "from chat.models import Message\n"
        f"print(json.dumps(list(Message.objects.filter(room__slug={slug!r}, deleted=None)"
        ".order_by('id').values_list('id', flat=True))))\n"
    )
    return json.loads(server.shell(code).strip().splitlines()[-1])
