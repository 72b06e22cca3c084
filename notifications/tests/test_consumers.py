import json

import pytest
from django.contrib.auth.models import AnonymousUser

from notifications import protocol
from notifications.consumers import NotificationConsumer
from notifications.models import Notification
from notifications.services import anotify
from notifications.tests.conftest import as_user
from realtime.db import database_sync_to_async
from realtime.generic import frames
from realtime.testing import WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)


async def open_socket(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        as_user(NotificationConsumer.as_asgi(), user), "/ws/notifications/"
    )
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_anonymous_socket_is_accepted_then_closed_with_4401(channel_layer):
    communicator = WebsocketCommunicator(
        as_user(NotificationConsumer.as_asgi(), AnonymousUser()), "/ws/notifications/"
    )
    connected, _ = await communicator.connect()
    assert connected
    closed = await communicator.receive_output()
    assert closed == {"type": "websocket.close", "code": protocol.CLOSE_NOT_AUTHENTICATED}


async def test_connect_sends_unread_count(channel_layer, ann, bob):
    await anotify([ann, ann, bob], verb="test", text="one")  # ann once: duplicates dropped
    await anotify(ann, verb="test", text="two")
    communicator = await open_socket(ann)
    # The first frame also says who the socket is (a page compares it with its own user).
    assert await communicator.receive_json_from() == {
        "type": protocol.UNREAD,
        "count": 2,
        "user": "ann",
    }
    await communicator.disconnect()


async def test_new_notification_is_pushed_with_new_unread_count(channel_layer, ann, bob):
    communicator = await open_socket(ann)
    assert (await communicator.receive_json_from())["count"] == 0
    [created] = await anotify(ann, verb="mention", text="bob: hi @ann", url="/chat/x/", actor=bob)
    frame = await communicator.receive_json_from()
    assert frame == {
        "type": protocol.NOTIFICATION,
        "id": created.id,
        "verb": "mention",
        "text": "bob: hi @ann",
        "url": "/chat/x/",
        "actor": "bob",
        "created": created.created.isoformat(),
        "read": False,
    }
    assert await communicator.receive_json_from() == {"type": protocol.UNREAD, "count": 1}
    await communicator.disconnect()


async def test_other_users_notifications_are_not_pushed(channel_layer, ann, bob):
    communicator = await open_socket(ann)
    await communicator.receive_json_from()
    await anotify(bob, verb="test", text="for bob")
    assert await communicator.receive_nothing(0.2)
    await communicator.disconnect()


async def test_read_updates_unread_count_in_every_tab(channel_layer, ann):
    created = await anotify(ann, verb="test", text="a")
    created += await anotify(ann, verb="test", text="b")
    tab1, tab2 = await open_socket(ann), await open_socket(ann)
    for tab in (tab1, tab2):
        assert (await tab.receive_json_from())["count"] == 2
    await tab1.send_json_to({"type": protocol.READ, "ids": [created[0].id]})
    for tab in (tab1, tab2):
        assert await tab.receive_json_from() == {"type": protocol.UNREAD, "count": 1}
    await tab2.send_json_to({"type": protocol.READ_ALL})
    for tab in (tab1, tab2):
        assert await tab.receive_json_from() == {"type": protocol.UNREAD, "count": 0}
    assert not await database_sync_to_async(
        Notification.objects.filter(recipient=ann, read=False).exists
    )()
    await tab1.disconnect()
    await tab2.disconnect()


async def test_read_ignores_other_users_ids(channel_layer, ann, bob):
    [theirs] = await anotify(bob, verb="test", text="bob's")
    communicator = await open_socket(ann)
    await communicator.receive_json_from()
    await communicator.send_json_to({"type": protocol.READ, "ids": [theirs.id]})
    assert (await communicator.receive_json_from())["count"] == 0
    assert not (await database_sync_to_async(Notification.objects.get)(pk=theirs.pk)).read
    await communicator.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", frames.MALFORMED),
        ("[1, 2]", frames.MALFORMED),
        ('{"type": "read", "ids": "all"}', frames.INVALID),
        ('{"type": "read", "ids": [1, "2"]}', frames.INVALID),
        ('{"type": "read", "ids": [100000000000000000000000000000]}', frames.MALFORMED),
        ('{"type": "delete"}', frames.UNKNOWN_TYPE),
        ('{"ids": [1]}', frames.MALFORMED),
        ('{"type": "read", "ids": ' + "[" * 5000 + "]" * 5000 + "}", frames.MALFORMED),
    ],
)
async def test_malformed_frame_gets_error_and_socket_stays_open(channel_layer, ann, frame, code):
    communicator = await open_socket(ann)
    await communicator.receive_json_from()
    await communicator.send_to(text_data=frame)
    error = await communicator.receive_json_from()
    assert error["type"] == frames.ERROR
    assert error["detail"]
    assert error["code"] == code
    await anotify(ann, verb="test", text="still here")
    assert (await communicator.receive_json_from())["text"] == "still here"
    await communicator.disconnect()


async def test_oversized_frame_gets_error_and_close_4009(channel_layer, ann):
    communicator = await open_socket(ann)
    await communicator.receive_json_from()
    big = json.dumps({"type": protocol.READ_ALL, "pad": "x" * protocol.MAX_FRAME_BYTES})
    await communicator.send_to(text_data=big)
    error = await communicator.receive_json_from()
    assert error["code"] == frames.TOO_LARGE
    assert await communicator.receive_output() == {
        "type": "websocket.close",
        "code": frames.CLOSE_TOO_LARGE,
    }


async def test_frame_just_under_the_limit_is_accepted(channel_layer, ann):
    await anotify(ann, verb="test", text="x")
    communicator = await open_socket(ann)
    await communicator.receive_json_from()
    frame = json.dumps({"type": protocol.READ_ALL, "pad": ""})
    frame = frame.replace('""', '"' + "x" * (protocol.MAX_FRAME_BYTES - len(frame)) + '"')
    assert len(frame.encode()) == protocol.MAX_FRAME_BYTES
    await communicator.send_to(text_data=frame)
    assert await communicator.receive_json_from() == {"type": protocol.UNREAD, "count": 0}
    await communicator.disconnect()


async def test_notification_while_offline_is_counted_on_reconnect(channel_layer, ann):
    communicator = await open_socket(ann)
    await communicator.receive_json_from()
    await communicator.disconnect()
    await anotify(ann, verb="test", text="while away")
    communicator = await open_socket(ann)
    assert (await communicator.receive_json_from())["count"] == 1
    await communicator.disconnect()
