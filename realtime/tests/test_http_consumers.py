"""AsyncHttpConsumer and LongPollConsumer, as a specification."""

from __future__ import annotations

import json
from typing import Any

import pytest

from realtime.generic.http import AsyncHttpConsumer, LongPollConsumer, LongPollResponse
from realtime.layers import get_channel_layer
from realtime.testing import HttpCommunicator

MEMORY_LAYER = {"default": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"}}


@pytest.fixture(autouse=True)
def layer(settings: Any) -> Any:
    """A fresh in-memory default layer for each test."""
    settings.CHANNEL_LAYERS = MEMORY_LAYER
    return get_channel_layer()


def header(response: dict[str, Any], name: bytes) -> bytes | None:
    return dict(response["headers"]).get(name)


# AsyncHttpConsumer -------------------------------------------------------------------------------


class Hello(AsyncHttpConsumer):
    async def handle(self, body: bytes) -> None:
        await self.send_response(201, b"hello " + body, headers=[(b"content-type", b"text/plain")])


async def test_handle_gets_the_body_and_send_response_answers() -> None:
    response = await HttpCommunicator(Hello.as_asgi(), "POST", "/", body=b"ann").get_response()
    assert response["status"] == 201
    assert response["body"] == b"hello ann"
    # The consumer's own headers come first; the core's security headers follow.
    assert response["headers"][0] == (b"content-type", b"text/plain")


async def test_body_is_assembled_from_request_chunks() -> None:
    communicator = HttpCommunicator(Hello.as_asgi(), "POST", "/")
    communicator.sent_request = True
    await communicator.send_input({"type": "http.request", "body": b"an", "more_body": True})
    await communicator.send_input({"type": "http.request", "body": b"n", "more_body": False})
    assert (await communicator.get_response())["body"] == b"hello ann"


async def test_headers_may_be_given_as_a_dict() -> None:
    class DictHeaders(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_headers(status=200, headers={b"x-kind": b"dict"})
            await self.send_body(b"ok")

    response = await HttpCommunicator(DictHeaders.as_asgi(), "GET", "/").get_response()
    assert header(response, b"x-kind") == b"dict"


async def test_response_body_may_be_streamed_in_chunks() -> None:
    class Chunked(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_headers()
            await self.send_body(b"one,", more_body=True)
            await self.send_body(b"two")

    response = await HttpCommunicator(Chunked.as_asgi(), "GET", "/").get_response()
    assert response["body"] == b"one,two"


async def test_consumer_ends_once_the_response_is_finished() -> None:
    communicator = HttpCommunicator(Hello.as_asgi(), "GET", "/")
    await communicator.get_response()
    await communicator.wait()
    assert communicator.future.done() and communicator.future.exception() is None


async def test_send_body_refuses_str() -> None:
    class Wrong(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_headers()
            await self.send_body("text")  # type: ignore[arg-type]

    communicator = HttpCommunicator(Wrong.as_asgi(), "GET", "/")
    await communicator.send_request()
    with pytest.raises(TypeError, match="Expected the body as bytes, but got str"):
        await communicator.wait()


async def test_send_body_before_headers_raises() -> None:
    class Headless(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_body(b"x")

    communicator = HttpCommunicator(Headless.as_asgi(), "GET", "/")
    await communicator.send_request()
    with pytest.raises(RuntimeError, match=r"Expected send_headers\(\) before send_body\(\)"):
        await communicator.wait()


async def test_started_response_can_be_finished_by_a_group_event(layer: Any) -> None:
    class Waiter(AsyncHttpConsumer):
        groups = ["news"]

        async def handle(self, body: bytes) -> None:
            await self.send_headers(headers=[(b"content-type", b"application/json")])
            await self.send_body(b"", more_body=True)

        async def news_posted(self, event: Any) -> None:
            await self.send_body(json.dumps(event).encode())

    communicator = HttpCommunicator(Waiter.as_asgi(), "GET", "/")
    await communicator.send_request()
    start = await communicator.receive_output()
    assert start["type"] == "http.response.start"
    assert (await communicator.receive_output())["more_body"] is True
    await layer.group_send("news", {"type": "news.posted", "id": 3})
    last = await communicator.receive_output()
    assert json.loads(last["body"]) == {"type": "news.posted", "id": 3}
    await communicator.wait()


async def test_disconnect_hook_runs_when_the_client_goes_away(layer: Any) -> None:
    class Watched(AsyncHttpConsumer):
        async def handle(self, body: bytes) -> None:
            await self.send_headers()
            await self.send_body(b"", more_body=True)

        async def disconnect(self) -> None:
            await self.channel_layer.group_send("observers", {"type": "gone"})

    watcher = await layer.new_channel()
    await layer.group_add("observers", watcher)
    communicator = HttpCommunicator(Watched.as_asgi(), "GET", "/")
    await communicator.send_request()
    await communicator.receive_output()
    await communicator.disconnect()
    assert await layer.receive(watcher) == {"type": "gone"}


# What every core HTTP consumer checks before reading the body ---------------------------------


class GetOnly(Hello):
    allowed_methods = ("GET",)


class Untouchable(AsyncHttpConsumer):
    """Records whether anything past the core's checks ran."""

    reached: list[str] = []

    async def http_request(self, message: dict[str, Any]) -> None:
        self.reached.append("body read")
        await super().http_request(message)

    async def handle(self, body: bytes) -> None:
        self.reached.append("handled")
        await self.send_response(200, b"ok")


async def test_a_method_not_allowed_is_refused_before_the_body_is_read() -> None:
    class Guarded(Untouchable):
        allowed_methods = ("GET",)

    Guarded.reached = []
    communicator = HttpCommunicator(Guarded.as_asgi(), "POST", "/")
    start = await communicator.receive_output()  # no http.request was sent at all
    body = await communicator.receive_output()
    assert start["status"] == 405
    assert dict(start["headers"])[b"allow"] == b"GET"
    assert json.loads(body["body"])["error"]["code"] == "method_not_allowed"
    assert Guarded.reached == []


@pytest.mark.parametrize(
    ("headers", "chunks"),
    [
        ([("content-length", "70000")], []),  # refused on the declared length, nothing read
        ([], [b"x" * 40_000, b"x" * 40_000]),  # chunked: refused once past the limit
    ],
    ids=["content-length", "chunked"],
)
async def test_a_body_over_the_limit_is_refused_with_413(settings: Any, headers, chunks) -> None:
    settings.REALTIME_HTTP_MAX_BODY = 64 * 1024
    Untouchable.reached = []
    communicator = HttpCommunicator(Untouchable.as_asgi(), "POST", "/", headers=headers)
    for chunk in chunks:
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": True})
    start = await communicator.receive_output()
    body = await communicator.receive_output()
    assert start["status"] == 413
    assert json.loads(body["body"])["error"]["code"] == "body_too_large"
    assert "handled" not in Untouchable.reached


async def test_a_body_within_the_limit_is_handled(settings: Any) -> None:
    settings.REALTIME_HTTP_MAX_BODY = 10
    response = await HttpCommunicator(
        Hello.as_asgi(), "POST", "/", body=b"0123456789"
    ).get_response()
    assert response["status"] == 201


async def test_a_host_not_in_allowed_hosts_is_refused_with_400(settings: Any) -> None:
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    refused = await HttpCommunicator(
        GetOnly.as_asgi(), "GET", "/", headers=[("host", "evil.example")]
    ).get_response()
    served = await HttpCommunicator(
        GetOnly.as_asgi(), "GET", "/", headers=[("host", "chat.example.com:443")]
    ).get_response()
    assert refused["status"] == 400
    assert json.loads(refused["body"])["error"]["code"] == "bad_host"
    assert served["status"] == 201


async def test_responses_carry_the_security_headers_django_sends(settings: Any) -> None:
    settings.CONTENT_SECURITY_POLICY = "default-src 'self'"
    settings.SECURE_HSTS_SECONDS = 3600
    # Behind a proxy Django is told to trust (DJANGO_TRUST_X_FORWARDED_PROTO).
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    plain = await HttpCommunicator(GetOnly.as_asgi(), "GET", "/").get_response()
    proxied_https = await HttpCommunicator(
        GetOnly.as_asgi(), "GET", "/", headers=[("x-forwarded-proto", "https")]
    ).get_response()
    headers = dict(plain["headers"])
    assert headers[b"x-content-type-options"] == b"nosniff"
    assert headers[b"referrer-policy"] == b"same-origin"
    assert headers[b"x-frame-options"] == b"DENY"
    assert headers[b"content-security-policy"] == b"default-src 'self'"
    assert b"strict-transport-security" not in headers  # HSTS only on secure requests
    assert dict(proxied_https["headers"])[b"strict-transport-security"] == b"max-age=3600"


# LongPollConsumer --------------------------------------------------------------------------------


class Inbox(LongPollConsumer):
    """Long-poll over a list of items shared by the test: answers with items after `?after=`."""

    items: list[dict[str, Any]] = []
    timeout = 5.0

    async def prepare(self, body: bytes) -> LongPollResponse | None:
        after = self.query.get("after", "0")
        if not after.isdigit():
            return self.json_response({"error": "after must be an integer"}, status=400)
        self.after = int(after)
        if "timeout" in self.query:
            self.timeout = float(self.query["timeout"])
        return None

    def get_groups(self) -> list[str]:
        return ["inbox"]

    async def poll(self) -> LongPollResponse | None:
        fresh = [item for item in self.items if item["id"] > self.after]
        return self.json_response({"items": fresh}) if fresh else None

    async def item_added(self, event: Any) -> None:
        await self.wake()

    async def on_timeout(self) -> LongPollResponse:
        return self.json_response({"items": []})


@pytest.fixture
def inbox() -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    Inbox.items = items
    return items


async def test_long_poll_refuses_a_bad_request_at_once(inbox: list[Any]) -> None:
    communicator = HttpCommunicator(Inbox.as_asgi(), "GET", "/poll/?after=x")
    response = await communicator.get_response()
    assert response["status"] == 400
    assert json.loads(response["body"]) == {"error": "after must be an integer"}


async def test_long_poll_answers_at_once_when_there_is_data(inbox: list[Any]) -> None:
    inbox.append({"id": 1, "text": "waiting already"})
    response = await HttpCommunicator(Inbox.as_asgi(), "GET", "/poll/?after=0").get_response()
    assert json.loads(response["body"]) == {"items": [{"id": 1, "text": "waiting already"}]}


async def test_long_poll_json_answers_are_not_cacheable(inbox: list[Any]) -> None:
    inbox.append({"id": 1})
    response = await HttpCommunicator(Inbox.as_asgi(), "GET", "/poll/").get_response()
    assert header(response, b"cache-control") == b"no-store"
    assert header(response, b"content-type") == b"application/json"


async def test_long_poll_answers_carry_their_content_length(inbox: list[Any]) -> None:
    response = await HttpCommunicator(Inbox.as_asgi(), "GET", "/poll/?after=x").get_response()
    assert header(response, b"content-length") == str(len(response["body"])).encode()


async def test_long_poll_waits_for_an_event_then_answers(inbox: list[Any], layer: Any) -> None:
    communicator = HttpCommunicator(Inbox.as_asgi(), "GET", "/poll/?after=0")
    await communicator.send_request()
    assert await communicator.receive_nothing()
    inbox.append({"id": 1, "text": "new"})
    await layer.group_send("inbox", {"type": "item.added"})
    response = await communicator.get_response()
    assert json.loads(response["body"]) == {"items": [{"id": 1, "text": "new"}]}
    await communicator.wait()


async def test_long_poll_event_without_new_data_keeps_waiting(inbox: list[Any], layer: Any) -> None:
    inbox.append({"id": 1})
    communicator = HttpCommunicator(Inbox.as_asgi(), "GET", "/poll/?after=1")
    await communicator.send_request()
    await layer.group_send("inbox", {"type": "item.added"})
    assert await communicator.receive_nothing()
    inbox.append({"id": 2})
    await layer.group_send("inbox", {"type": "item.added"})
    assert json.loads((await communicator.get_response())["body"]) == {"items": [{"id": 2}]}


async def test_long_poll_answers_with_on_timeout_when_nothing_happens(inbox: list[Any]) -> None:
    communicator = HttpCommunicator(Inbox.as_asgi(), "GET", "/poll/?timeout=0.05")
    response = await communicator.get_response()
    assert response["status"] == 200
    assert json.loads(response["body"]) == {"items": []}
    await communicator.wait()


async def test_long_poll_default_timeout_answer_is_204() -> None:
    class Quiet(LongPollConsumer):
        timeout = 0.05

    response = await HttpCommunicator(Quiet.as_asgi(), "GET", "/").get_response()
    assert response["status"] == 204
    assert response["body"] == b""


async def test_long_poll_joins_groups_before_looking_for_data(layer: Any) -> None:
    class Racy(LongPollConsumer):
        """poll() finds nothing, but an event arrives while it runs (a write racing the query)."""

        calls = 0

        def get_groups(self) -> list[str]:
            return ["inbox"]

        async def poll(self) -> LongPollResponse | None:
            Racy.calls += 1
            if Racy.calls == 1:
                await self.channel_layer.group_send("inbox", {"type": "item.added"})
                return None
            return self.json_response({"found": "on the second look"})

        async def item_added(self, event: Any) -> None:
            await self.wake()

    response = await HttpCommunicator(Racy.as_asgi(), "GET", "/").get_response()
    assert json.loads(response["body"]) == {"found": "on the second look"}


async def test_long_poll_client_disconnect_sends_nothing_and_leaves_groups(
    inbox: list[Any], layer: Any
) -> None:
    class ReportingInbox(Inbox):
        async def poll(self) -> LongPollResponse | None:
            await self.channel_layer.group_send(
                "observers", {"type": "me", "channel": self.channel_name}
            )
            return None

    watcher = await layer.new_channel()
    await layer.group_add("observers", watcher)
    communicator = HttpCommunicator(ReportingInbox.as_asgi(), "GET", "/poll/")
    await communicator.send_request()
    channel = (await layer.receive(watcher))["channel"]
    await communicator.disconnect()
    assert communicator.future.exception() is None
    assert await communicator.receive_nothing()
    await layer.group_send("inbox", {"type": "item.added"})
    await layer.send(channel, {"type": "marker"})
    # The abandoned poll's channel holds the marker only: it had left the group.
    assert await layer.receive(channel) == {"type": "marker"}


async def test_long_poll_answers_once_even_if_more_events_arrive(
    inbox: list[Any], layer: Any
) -> None:
    communicator = HttpCommunicator(Inbox.as_asgi(), "GET", "/poll/")
    await communicator.send_request()
    inbox.append({"id": 1})
    await layer.group_send("inbox", {"type": "item.added"})
    await layer.group_send("inbox", {"type": "item.added"})
    await communicator.get_response()
    await communicator.wait()
    assert await communicator.receive_nothing()


async def test_long_poll_handler_may_respond_directly(layer: Any) -> None:
    class Relay(LongPollConsumer):
        groups = ["relay"]

        async def relay_message(self, event: Any) -> None:
            await self.respond(self.json_response({"text": event["text"]}, status=202))

    communicator = HttpCommunicator(Relay.as_asgi(), "GET", "/")
    await communicator.send_request()
    await communicator.receive_nothing()
    await layer.group_send("relay", {"type": "relay.message", "text": "hi"})
    response = await communicator.get_response()
    assert response["status"] == 202
    assert json.loads(response["body"]) == {"text": "hi"}
