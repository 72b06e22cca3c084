"""The notification endpoints through the real root application (config.asgi): session cookie,
origin check and Bearer-token auth as a browser or script meets them."""

import json

import pytest
from django.test import Client

from notifications import protocol
from notifications.models import AccessToken
from notifications.services import anotify
from realtime.db import database_sync_to_async
from realtime.testing import HttpCommunicator, WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def application(channel_layer):
    from config.asgi import application

    return application


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


def browser_headers(cookie: str | None) -> list[tuple[str, str]]:
    headers = [("host", "testserver"), ("origin", "http://testserver")]
    if cookie:
        headers.append(("cookie", f"sessionid={cookie}"))
    return headers


async def test_socket_with_session_cookie_streams_notifications(application, ann):
    cookie = await database_sync_to_async(session_cookie)(ann)
    socket = WebsocketCommunicator(application, "/ws/notifications/", browser_headers(cookie))
    assert (await socket.connect())[0]
    assert await socket.receive_json_from() == {"type": protocol.UNREAD, "count": 0, "user": "ann"}
    await anotify(ann, verb="test", text="live")
    assert (await socket.receive_json_from())["text"] == "live"
    await socket.disconnect()


async def test_socket_without_session_closes_4401(application, db):
    socket = WebsocketCommunicator(application, "/ws/notifications/", browser_headers(None))
    assert (await socket.connect())[0]
    assert (await socket.receive_output())["code"] == protocol.CLOSE_NOT_AUTHENTICATED


async def test_poll_with_session_cookie(application, ann):
    cookie = await database_sync_to_async(session_cookie)(ann)
    await anotify(ann, verb="test", text="polled")
    poll = HttpCommunicator(
        application, "GET", "/notifications/poll/?after=0", headers=browser_headers(cookie)
    )
    response = await poll.get_response()
    assert response["status"] == 200
    assert json.loads(response["body"])["notifications"][0]["text"] == "polled"


async def test_poll_with_bearer_token_and_no_cookie(application, ann):
    _, raw = await database_sync_to_async(AccessToken.issue)(ann, "cli")
    await anotify(ann, verb="test", text="scripted")
    poll = HttpCommunicator(
        application,
        "GET",
        "/notifications/poll/?after=0",
        headers=[("host", "testserver"), ("authorization", f"Bearer {raw}")],
    )
    response = await poll.get_response()
    assert json.loads(response["body"])["notifications"][0]["text"] == "scripted"


async def test_poll_without_credentials_is_401(application, db):
    poll = HttpCommunicator(
        application, "GET", "/notifications/poll/", headers=[("host", "testserver")]
    )
    response = await poll.get_response()
    assert response["status"] == 401
    assert json.loads(response["body"])["error"]["code"] == protocol.ERROR_NOT_AUTHENTICATED


async def test_socket_from_another_origin_is_refused(application, ann):
    cookie = await database_sync_to_async(session_cookie)(ann)
    headers = [
        ("host", "testserver"),
        ("origin", "http://evil.example"),
        ("cookie", f"sessionid={cookie}"),
    ]
    socket = WebsocketCommunicator(application, "/ws/notifications/", headers)
    connected, _ = await socket.connect()
    assert not connected


async def test_marking_read_over_the_api_updates_open_sockets(application, ann):
    """The three ways agree: a read through the HTTP API reaches the user's open sockets."""
    cookie = await database_sync_to_async(session_cookie)(ann)
    created = await anotify(ann, verb="test", text="one")
    created += await anotify(ann, verb="test", text="two")
    socket = WebsocketCommunicator(application, "/ws/notifications/", browser_headers(cookie))
    assert (await socket.connect())[0]
    assert (await socket.receive_json_from())["count"] == 2

    def mark_first_read():
        client = Client()
        client.force_login(ann)
        body = json.dumps({"ids": [created[0].id]})
        return client.post("/api/notifications/read/", body, content_type="application/json")

    response = await database_sync_to_async(mark_first_read)()
    assert response.json() == {"unread": 1}
    assert await socket.receive_json_from() == {"type": protocol.UNREAD, "count": 1}
    await socket.disconnect()
