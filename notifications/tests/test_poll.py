"""The long-poll feed `GET /notifications/poll/` (NotificationPoll), driven by HttpCommunicator."""

import asyncio
import json
import threading

import pytest
from django.contrib.auth.models import AnonymousUser

from notifications import protocol, services
from notifications.authentication import BearerTokenAuthMiddleware
from notifications.consumers import NotificationPoll
from notifications.models import AccessToken
from notifications.services import anotify
from notifications.tests.conftest import as_user
from realtime.db import database_sync_to_async
from realtime.testing import HttpCommunicator

pytestmark = pytest.mark.django_db(transaction=True)


def poll(user, query: str = "", method: str = "GET", headers=None) -> HttpCommunicator:
    app = as_user(BearerTokenAuthMiddleware(NotificationPoll.as_asgi()), user)
    return HttpCommunicator(app, method, f"/notifications/poll/?{query}", headers=headers)


def json_body(response: dict) -> dict:
    return json.loads(response["body"])


def header(response: dict, name: bytes) -> bytes | None:
    return dict(response["headers"]).get(name)


async def test_answers_at_once_with_everything_newer_than_after(channel_layer, ann, bob):
    first = (await anotify(ann, verb="test", text="one"))[0]
    second = (await anotify(ann, verb="test", text="two"))[0]
    await anotify(bob, verb="test", text="not ann's")
    response = await poll(ann, "after=0&timeout=30").get_response()
    assert response["status"] == 200
    assert header(response, b"cache-control") == b"no-store"
    body = json_body(response)
    assert [n["text"] for n in body["notifications"]] == ["one", "two"]
    assert body["cursor"] == second.id
    assert body["has_more"] is False
    body = json_body(await poll(ann, f"after={first.id}").get_response())
    assert [n["id"] for n in body["notifications"]] == [second.id]


async def test_waits_and_wakes_when_a_notification_arrives(channel_layer, ann, bob):
    [old] = await anotify(ann, verb="test", text="old")
    communicator = poll(ann, f"after={old.id}&timeout=30")
    await communicator.send_request()
    assert await communicator.receive_nothing(0.2)
    await anotify(bob, verb="test", text="for bob")
    assert await communicator.receive_nothing(0.2)
    [new] = await anotify(ann, verb="mention", text="new", actor=bob)
    body = json_body(await communicator.get_response(timeout=5))
    assert body["notifications"] == [new.as_frame()] and body["cursor"] == new.id
    assert body["notifications"][0]["actor"] == "bob"


async def test_timeout_answers_with_an_empty_list(channel_layer, ann):
    [old] = await anotify(ann, verb="test", text="old")
    response = await poll(ann, f"after={old.id}&timeout=0.2").get_response(timeout=5)
    assert response["status"] == 200
    assert json_body(response) == {"notifications": [], "cursor": old.id, "has_more": False}


async def test_at_most_100_at_once_with_has_more(channel_layer, ann):
    for _ in range(protocol.POLL_MAX_NOTIFICATIONS + 5):
        await anotify(ann, verb="test", text="n")
    body = json_body(await poll(ann, "after=0").get_response())
    assert len(body["notifications"]) == protocol.POLL_MAX_NOTIFICATIONS
    assert body["has_more"] is True
    rest = json_body(await poll(ann, f"after={body['cursor']}").get_response())
    assert len(rest["notifications"]) == 5 and rest["has_more"] is False


async def test_notification_created_during_the_first_query_is_not_missed(
    channel_layer, ann, monkeypatch
):
    """The poll joins the user's group before it queries, so a notification committed after the
    query looked (but before the wait began) still answers the request."""
    original = services.notifications_after
    calls = []

    def query_then_notify(user_id, after):
        result = original(user_id, after)
        if not calls:
            from notifications.services import notify

            notify(user_id, verb="test", text="raced")
        calls.append(after)
        return result

    monkeypatch.setattr(services, "notifications_after", query_then_notify)
    communicator = poll(ann, "timeout=30")
    body = json_body(await communicator.get_response(timeout=5))
    assert [n["text"] for n in body["notifications"]] == ["raced"]


async def test_client_disconnect_while_waiting_is_clean(channel_layer, ann):
    communicator = poll(ann, "timeout=30")
    await communicator.send_request()
    assert await communicator.receive_nothing(0.2)
    await communicator.disconnect()  # the consumer returns without raising
    assert communicator.future.done() and communicator.future.exception() is None
    await anotify(ann, verb="test", text="after the client left")
    assert await communicator.receive_nothing(0.1)


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("after=abc", "after"),
        ("after=-1", "after"),
        ("after=%C2%B2", "after"),
        ("after=99999999999999999999", "after"),
        ("timeout=abc", "timeout"),
        ("timeout=61", "timeout"),
        ("timeout=-1", "timeout"),
        ("timeout=nan", "timeout"),
    ],
)
async def test_bad_parameters_are_400_json(channel_layer, ann, query, parameter):
    response = await poll(ann, query).get_response()
    assert response["status"] == 400
    error = json_body(response)["error"]
    assert error["code"] == protocol.ERROR_BAD_PARAMETER
    assert parameter in error["message"]


async def test_anonymous_is_401_json(channel_layer, db):
    response = await poll(AnonymousUser(), "timeout=30").get_response()
    assert response["status"] == 401
    assert json_body(response)["error"]["code"] == protocol.ERROR_NOT_AUTHENTICATED


async def test_post_is_405(channel_layer, ann):
    response = await poll(ann, method="POST").get_response()
    assert response["status"] == 405
    assert header(response, b"allow") == b"GET"
    assert json_body(response)["error"]["code"] == protocol.ERROR_METHOD_NOT_ALLOWED


async def test_bearer_token_authenticates_the_poll(channel_layer, ann):
    _, raw = await database_sync_to_async(AccessToken.issue)(ann, "script")
    await anotify(ann, verb="test", text="via token")
    response = await poll(
        AnonymousUser(), "after=0", headers=[("authorization", f"Bearer {raw}")]
    ).get_response()
    assert response["status"] == 200
    assert json_body(response)["notifications"][0]["text"] == "via token"


async def test_bad_bearer_token_is_401_even_with_a_session_user(channel_layer, ann):
    bad_token = [("authorization", "Bearer sbt_nope")]
    response = await poll(ann, "after=0", headers=bad_token).get_response()
    assert response["status"] == 401


async def test_a_thousand_waiting_polls_hold_no_threads(channel_layer, ann, monkeypatch, settings):
    """1000 polls wait at once without a thread each, then one notification answers them all."""
    settings.REALTIME_MAX_POLLS_PER_USER = 0  # one user's thousand polls: no per-user cap here
    original = services.notifications_after
    queried = []

    def counted(user_id, after):
        result = original(user_id, after)
        queried.append(after)
        return result

    monkeypatch.setattr(services, "notifications_after", counted)
    baseline = threading.active_count()
    communicators = [poll(ann, "timeout=60") for _ in range(1000)]
    for communicator in communicators:
        await communicator.send_request()
    for _ in range(600):  # bounded: at most 30 s for every poll to run its first query
        if len(queried) == 1000:
            break
        await asyncio.sleep(0.05)
    assert len(queried) == 1000
    assert await communicators[-1].receive_nothing(0.2)
    waiting_threads = threading.active_count()
    assert not any(c.future.done() for c in communicators)
    assert waiting_threads < baseline + 20
    await anotify(ann, verb="test", text="to everyone waiting")
    responses = await asyncio.gather(*(c.get_response(timeout=30) for c in communicators))
    assert {json_body(r)["notifications"][0]["text"] for r in responses} == {"to everyone waiting"}
