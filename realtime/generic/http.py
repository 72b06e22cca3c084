"""HTTP consumers: AsyncHttpConsumer for hand-written async endpoints, and LongPollConsumer, the
base class for endpoints that hold a request open until something happens.

The events between the server and an HTTP consumer (ASGI):

    in   {"type": "http.request", "body": b"...", "more_body": False}   (maybe in several chunks)
    out  {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"...")]}
    out  {"type": "http.response.body", "body": b"...", "more_body": False}
    in   {"type": "http.disconnect"}                                     (the client went away)

While the request is open the consumer also receives its channel-layer messages (group events), so
a handler can finish a response that handle() started.

Difference from Django Channels, on purpose: Channels ends the consumer as soon as handle()
returns, so its own documented long-poll and server-sent-events examples (start the response in
handle(), finish it from a group event) never receive the event. Here the consumer keeps running
while a response is started but not finished, and stops once the last body chunk is sent or the
client disconnects.

Before any of that, every AsyncHttpConsumer checks the request the way Django's own stack would
for a page, and answers at once, without reading the body, when it fails:

    400  the Host header is not in ALLOWED_HOSTS (realtime.security.http.host_is_allowed)
    405  the method is not in `allowed_methods` (with an Allow header)
    413  the body is larger than `max_body_size` (settings.REALTIME_HTTP_MAX_BODY, 64 KiB by
         default): refused on its Content-Length before a byte is read, or as soon as the
         chunks received pass the limit

Refusals are JSON, `{"error": {"code": "bad_host" | "method_not_allowed" | "body_too_large",
"message": "..."}}`. Every response gets the security headers Django's middleware sends
(realtime.security.http.security_headers: nosniff, Referrer-Policy, X-Frame-Options, CSP, HSTS).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Collection, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.http import QueryDict

from realtime.connection_limits import (
    ERROR_TOO_MANY_POLLS,
    authenticated_user_id,
    max_polls_per_user,
    waiting_polls,
)
from realtime.consumer import AsyncConsumer
from realtime.exceptions import StopConsumer
from realtime.security.http import add_security_headers, host_is_allowed, request_host
from realtime.types import Headers, Message, Receive, Scope, Send

HeadersInput = Iterable[tuple[bytes, bytes]] | Mapping[bytes, bytes]

#: The request body limit when settings.REALTIME_HTTP_MAX_BODY is not set: 64 KiB.
DEFAULT_MAX_BODY_SIZE = 64 * 1024


def json_error_body(code: str, message: str) -> bytes:
    """The body of a refusal: {"error": {"code": ..., "message": ...}}."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()


class AsyncHttpConsumer(AsyncConsumer):
    """Async HTTP endpoint: override `handle(body)` and answer with `send_response()`, or with
    `send_headers()` then one or more `send_body()`.

    `allowed_methods` (e.g. `("GET",)`; None: any) and `max_body_size` (None: the setting
    REALTIME_HTTP_MAX_BODY) are checked before the body is read; see the module docstring.

    `self.groups` are joined when the request body is complete (before handle()), and left when the
    consumer ends. `disconnect()` runs once at the end, whether the response finished, the client
    went away or handle() failed.
    """

    #: HTTP methods this endpoint answers; any other gets 405 at once. None: every method.
    allowed_methods: ClassVar[Collection[str] | None] = None
    #: The largest request body accepted, in bytes; None: settings.REALTIME_HTTP_MAX_BODY.
    max_body_size: ClassVar[int | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.body: list[bytes] = []
        self.body_size = 0
        self.response_started = False
        self.response_finished = False
        self.request_handled = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scope = scope
        send = add_security_headers(scope, send)
        try:
            refusal = self.refusal()
            if refusal is not None:
                # Answered from the scope alone: the body is never read, no group is joined.
                await self._send_refusal(send, *refusal)
                return
            await super().__call__(scope, receive, send)
        finally:
            await self.disconnect()

    def body_limit(self) -> int:
        if self.max_body_size is not None:
            return self.max_body_size
        return int(getattr(settings, "REALTIME_HTTP_MAX_BODY", DEFAULT_MAX_BODY_SIZE))

    def refusal(self) -> tuple[int, str, str, Headers] | None:
        """(status, code, message, headers) when the request must be refused from its scope
        alone (host, method, declared length), else None."""
        if not host_is_allowed(self.scope):
            return 400, "bad_host", f"host {request_host(self.scope)!r} is not allowed", []
        method = self.scope.get("method", "GET")
        if self.allowed_methods is not None and method not in self.allowed_methods:
            allowed = ", ".join(self.allowed_methods)
            message = f"this endpoint answers {allowed} only, got {method}"
            return 405, "method_not_allowed", message, [(b"allow", allowed.encode())]
        declared = next(
            (value for name, value in self.scope.get("headers", []) if name == b"content-length"),
            None,
        )
        if declared is not None and declared.isdigit() and int(declared) > self.body_limit():
            return 413, "body_too_large", self._too_large_message(int(declared)), []
        return None

    def _too_large_message(self, size: int | None = None) -> str:
        got = f", got {size}" if size is not None else ""
        return f"request bodies are limited to {self.body_limit()} bytes{got}"

    @staticmethod
    async def _send_refusal(
        send: Send, status: int, code: str, message: str, headers: Headers
    ) -> None:
        body = json_error_body(code, message)
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"cache-control", b"no-store"),
                    (b"content-length", str(len(body)).encode()),
                    *headers,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body, "more_body": False})

    async def send_headers(self, *, status: int = 200, headers: HeadersInput | None = None) -> None:
        """Start the response. Headers are a list of (bytes, bytes) pairs or a dict of them. The
        server sends them with the first body chunk."""
        if self.response_started:
            raise RuntimeError("Expected to start the response once, but it was already started")
        if headers is None:
            header_list: Headers = []
        elif isinstance(headers, Mapping):
            header_list = list(headers.items())
        else:
            header_list = list(headers)
        self.response_started = True
        await self.send({"type": "http.response.start", "status": status, "headers": header_list})

    async def send_body(self, body: bytes, *, more_body: bool = False) -> None:
        """Send a body chunk; `more_body=True` keeps the response open for more chunks."""
        if not isinstance(body, bytes):
            raise TypeError(f"Expected the body as bytes, but got {type(body).__name__}")
        if not self.response_started:
            raise RuntimeError("Expected send_headers() before send_body(), but got no headers")
        if self.response_finished:
            raise RuntimeError("Expected an open response for send_body(), but it was finished")
        self.response_finished = not more_body
        await self.send({"type": "http.response.body", "body": body, "more_body": more_body})

    async def send_response(
        self, status: int, body: bytes, headers: HeadersInput | None = None
    ) -> None:
        """Send a whole response at once."""
        await self.send_headers(status=status, headers=headers)
        await self.send_body(body)

    async def handle(self, body: bytes) -> None:
        """The complete request body has arrived: respond (now, or later from an event handler
        after starting the response)."""
        raise NotImplementedError("Subclasses of AsyncHttpConsumer must provide a handle() method.")

    async def disconnect(self) -> None:
        """The request is over (answered, abandoned or failed): clean up. Do not send anything."""

    async def http_request(self, message: Message) -> None:
        if message.get("body"):
            self.body_size += len(message["body"])
            if self.body_size > self.body_limit():
                self.body.clear()
                await self._send_refusal(
                    self.send, 413, "body_too_large", self._too_large_message(), []
                )
                raise StopConsumer()
            self.body.append(message["body"])
        if message.get("more_body"):
            return
        await self.join_groups()
        await self.handle(b"".join(self.body))
        self.request_handled = True

    async def http_disconnect(self, message: Message) -> None:
        raise StopConsumer()

    def request_is_open(self) -> bool:
        """Whether the consumer should go on serving events after handle(): while a response is
        started but not finished."""
        return self.response_started and not self.response_finished

    async def dispatch(self, message: Message) -> None:
        await super().dispatch(message)
        if self.request_handled and not self.request_is_open():
            raise StopConsumer()


@dataclass(frozen=True)
class LongPollResponse:
    """A complete HTTP answer a LongPollConsumer hook returns."""

    status: int
    body: bytes = b""
    headers: Headers = field(default_factory=list)


class LongPollConsumer(AsyncHttpConsumer):
    """Holds an HTTP request open until a channel-layer event or `timeout`, then answers once.

    The request goes through these hooks, in order:

    1. `prepare(body)`: parse and check the request (`self.query`, `self.scope["user"]`). Return a
       LongPollResponse to answer at once (400, 401, ...), or None to go on.
    2. The consumer joins `get_groups()` (default `self.groups`) *before* looking for data, so an
       event that happens while poll() runs is not missed: it is queued and handled next.
    3. `poll()`: look for data to send (a query). Return a LongPollResponse to answer now, or None
       to wait.
    4. While waiting, event handlers run as in any consumer; one calls `await self.wake()` to run
       poll() again (answering if it returns a response), or `await self.respond(response)`.
    5. After `timeout` seconds with no answer, `on_timeout()` gives the answer (default: 204).

    A logged-in user may have at most settings.REALTIME_MAX_POLLS_PER_USER requests waiting in
    this process (0: no cap); the next one that would wait is answered 429 at once
    (realtime.connection_limits).

    If the client disconnects while waiting, the groups are left and nothing is sent. Waiting costs
    no thread: it is a pending read on the event loop. Responses made by `json_response()` carry
    `Cache-Control: no-store`, so no cache replays a stale poll. Example:

        class NotificationPoll(LongPollConsumer):
            timeout = 25

            async def prepare(self, body):
                if not self.scope["user"].is_authenticated:
                    return self.json_response({"error": "login required"}, status=401)
                self.after = self.query.get("after", "0")
                if not self.after.isdigit():
                    return self.json_response({"error": "after must be an integer"}, status=400)
                return None

            def get_groups(self):
                return [f"notifications.user.{self.scope['user'].pk}"]

            async def poll(self):
                items = await unread_after(self.scope["user"], int(self.after))
                return self.json_response({"items": items}) if items else None

            async def notification_created(self, event):   # {"type": "notification.created"}
                await self.wake()

            async def on_timeout(self):
                return self.json_response({"items": []})
    """

    #: Seconds to hold the request before on_timeout() answers; a prepare() may change it.
    timeout: float = 25.0
    #: The event type the consumer sends itself when `timeout` passes.
    timeout_event_type = "longpoll.timeout"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.waiting = False
        self._deadline: float | None = None
        self._poll_slot: Hashable | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._asgi_receive = receive
        try:
            await super().__call__(scope, self._receive_until_deadline, send)
        finally:
            if self._poll_slot is not None:
                waiting_polls.release(self._poll_slot)

    @property
    def query(self) -> QueryDict:
        """The query string, parsed as Django does (`self.query.get("after")`)."""
        return QueryDict(self.scope.get("query_string", b""))

    @property
    def answered(self) -> bool:
        return self.response_started

    async def prepare(self, body: bytes) -> LongPollResponse | None:
        """Check the request; return a response to refuse it, None to go on."""
        return None

    def get_groups(self) -> Iterable[str]:
        """The groups whose events may answer this request."""
        return list(self.groups or [])

    async def poll(self) -> LongPollResponse | None:
        """Look for something to answer with; None to keep waiting."""
        return None

    async def on_timeout(self) -> LongPollResponse:
        """The answer when `timeout` passes with nothing to say."""
        return LongPollResponse(204, headers=[(b"cache-control", b"no-store")])

    async def handle(self, body: bytes) -> None:
        refusal = await self.prepare(body)
        if refusal is not None:
            await self.respond(refusal)
            return
        await self.join_groups(self.get_groups())
        await self.wake()
        if not self.answered and not self._take_poll_slot():
            limit = max_polls_per_user()
            body = json_error_body(
                ERROR_TOO_MANY_POLLS, f"at most {limit} waiting polls per user; retry later"
            )
            headers = [(b"content-type", b"application/json"), (b"retry-after", b"5")]
            await self.respond(LongPollResponse(429, body, headers))
        if not self.answered:
            self.waiting = True
            self._deadline = asyncio.get_running_loop().time() + self.timeout

    def _take_poll_slot(self) -> bool:
        user_id = authenticated_user_id(self.scope)
        if user_id is None:
            return True
        if not waiting_polls.try_acquire(user_id, max_polls_per_user()):
            return False
        self._poll_slot = user_id
        return True

    async def wake(self) -> None:
        """Run poll() again and answer if it returns a response; otherwise keep waiting."""
        if self.answered:
            return
        response = await self.poll()
        if response is not None:
            await self.respond(response)

    async def respond(self, response: LongPollResponse) -> None:
        """Answer the request with `response` (later answers are ignored: one request, one
        answer)."""
        if self.answered:
            return
        self.waiting = False
        headers = list(response.headers)
        # A known length spares the client a chunked body (not allowed on 204 and 304).
        if response.status not in (204, 304) and not any(
            name.lower() == b"content-length" for name, _ in headers
        ):
            headers.append((b"content-length", str(len(response.body)).encode()))
        await self.send_response(response.status, response.body, headers=headers)

    def request_is_open(self) -> bool:
        return self.waiting and not self.answered

    async def longpoll_timeout(self, message: Message) -> None:
        if self.waiting and not self.answered:
            await self.respond(await self.on_timeout())

    @staticmethod
    def json_response(
        data: Any, status: int = 200, headers: Iterable[tuple[bytes, bytes]] = ()
    ) -> LongPollResponse:
        """A JSON answer (dates and decimals encoded as Django does), not cacheable."""
        body = json.dumps(data, cls=DjangoJSONEncoder).encode()
        return LongPollResponse(
            status,
            body,
            [
                (b"content-type", b"application/json"),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        )

    async def _receive_until_deadline(self) -> Message:
        # The ASGI receive, but once a deadline is set a read that outlasts it turns into the
        # timeout event. The read is re-armed after each handled message, so it sees the deadline
        # handle() sets. Cancelling a pending server read is safe: nothing is taken off its queue.
        if self._deadline is None:
            return await self._asgi_receive()
        remaining = max(0.0, self._deadline - asyncio.get_running_loop().time())
        try:
            async with asyncio.timeout(remaining):
                return await self._asgi_receive()
        except TimeoutError:
            self._deadline = None
            return {"type": self.timeout_event_type}


__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "AsyncHttpConsumer",
    "LongPollConsumer",
    "LongPollResponse",
    "json_error_body",
]
