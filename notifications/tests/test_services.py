import asyncio
import contextlib

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth import get_user_model

from notifications import anotify_all, notify, notify_all, protocol
from notifications.consumers import NotificationConsumer
from notifications.models import Notification
from notifications.routing import channel_routes
from notifications.services import MAX_TEXT_LENGTH, run_fanout_batch
from notifications.tests.conftest import as_user
from realtime.db import database_sync_to_async
from realtime.layers.memory import InMemoryChannelLayer
from realtime.routing import ChannelNameRouter
from realtime.testing import WebsocketCommunicator
from realtime.worker import Worker


def make_users(count: int, **fields) -> list[int]:
    User = get_user_model()
    start = User.objects.count()
    User.objects.bulk_create(
        [User(username=f"user{start + i}", password="!", **fields) for i in range(count)]
    )
    return list(User.objects.order_by("pk").values_list("pk", flat=True))


@pytest.mark.django_db
def test_notify_accepts_a_user_an_id_or_many_and_drops_duplicates(ann, bob):
    assert [n.recipient_id for n in notify(ann, verb="v", text="t")] == [ann.pk]
    assert [n.recipient_id for n in notify(bob.pk, verb="v", text="t")] == [bob.pk]
    many = notify([ann, bob.pk, ann], verb="v", text="t", url="/x/", actor=bob)
    assert [n.recipient_id for n in many] == [ann.pk, bob.pk]
    assert all(n.pk and n.actor == bob and n.url == "/x/" for n in many)
    assert notify([], verb="v", text="t") == []
    assert Notification.objects.count() == 4


@pytest.mark.django_db
def test_notify_rejects_bad_input_and_shortens_long_text(ann):
    with pytest.raises(ValueError, match="verb"):
        notify(ann, verb="", text="t")
    with pytest.raises(ValueError, match="url"):
        notify(ann, verb="v", text="t", url="/" * 501)
    for unsafe in ["javascript:alert(1)", "//evil.example/", "data:text/html,x"]:
        with pytest.raises(ValueError, match="url"):
            notify(ann, verb="v", text="t", url=unsafe)
    assert notify(ann, verb="v", text="t", url="https://example.com/x")[0].pk
    with pytest.raises(TypeError, match="'ann'"):
        notify(["ann"], verb="v", text="t")
    [long] = notify(ann, verb="v", text="x" * 5000)
    assert len(long.text) == MAX_TEXT_LENGTH and long.text.endswith("…")


@pytest.mark.django_db
def test_a_fanout_batch_delivered_twice_notifies_each_user_once(ann):
    make_users(protocol.FANOUT_BATCH_SIZE + 10)
    message = {
        "type": protocol.EVENT_FANOUT,
        "fanout_id": "f" * 32,
        "verb": "announcement",
        "text": "hello all",
        "url": "",
        "actor_id": ann.pk,
        "after_user_id": 0,
    }
    following = run_fanout_batch(message)
    assert run_fanout_batch(message) == following  # the re-delivery adds nothing
    assert Notification.objects.count() == protocol.FANOUT_BATCH_SIZE
    first_batch = list(
        get_user_model()
        .objects.exclude(pk=ann.pk)  # the actor is not notified of their own announcement
        .order_by("pk")
        .values_list("pk", flat=True)[: protocol.FANOUT_BATCH_SIZE]
    )
    assert following["after_user_id"] == first_batch[-1]  # the next batch starts after it
    assert run_fanout_batch(following) is None
    total = get_user_model().objects.count()
    assert Notification.objects.filter(fanout_id="f" * 32).count() == total - 1  # all but ann


@pytest.mark.django_db
def test_a_fanout_notifies_everyone_but_its_actor(ann, bob):
    """The moderator who announces does not get a notification of his own announcement."""
    message = {
        "type": protocol.EVENT_FANOUT,
        "fanout_id": "a" * 32,
        "verb": "announcement",
        "text": "maintenance at noon",
        "url": "/",
        "actor_id": ann.pk,
        "after_user_id": 0,
    }
    assert run_fanout_batch(message) is None
    assert list(Notification.objects.values_list("recipient_id", flat=True)) == [bob.pk]
    run_fanout_batch({**message, "fanout_id": "b" * 32, "actor_id": None})
    assert Notification.objects.filter(fanout_id="b" * 32).count() == 2


@pytest.mark.django_db
def test_notify_all_queues_the_fanout_only_when_the_transaction_commits(
    channel_layer, django_capture_on_commit_callbacks
):
    async def next_fanout_message():
        return await asyncio.wait_for(channel_layer.receive(protocol.FANOUT_CHANNEL), 2)

    with django_capture_on_commit_callbacks() as callbacks:
        fanout_id = notify_all(verb="announcement", text="after commit")
    assert len(callbacks) == 1
    with pytest.raises(TimeoutError):
        async_to_sync(asyncio.wait_for)(next_fanout_message(), 0.2)
    callbacks[0]()
    message = async_to_sync(next_fanout_message)()
    assert (message["fanout_id"], message["text"]) == (fanout_id, "after commit")
    assert message["after_user_id"] == 0


@pytest.mark.django_db
def test_malformed_fanout_message_raises_naming_it():
    with pytest.raises(ValueError, match="after_user_id"):
        run_fanout_batch({"type": protocol.EVENT_FANOUT, "fanout_id": "x", "verb": "v"})


@pytest.mark.django_db(transaction=True)
async def test_notify_all_reaches_every_active_user_through_the_worker(channel_layer, ann, bob):
    await database_sync_to_async(make_users)(protocol.FANOUT_BATCH_SIZE * 2 + 3)
    await database_sync_to_async(make_users)(2, is_active=False)
    active = await database_sync_to_async(get_user_model().objects.filter(is_active=True).count)()
    socket = WebsocketCommunicator(
        as_user(NotificationConsumer.as_asgi(), ann), "/ws/notifications/"
    )
    assert (await socket.connect())[0]
    assert (await socket.receive_json_from())["count"] == 0
    worker = Worker(ChannelNameRouter(channel_routes), [protocol.FANOUT_CHANNEL], channel_layer)
    running = asyncio.ensure_future(worker.run())
    try:
        await anotify_all(verb="announcement", text="maintenance at noon", actor=bob)
        frame = await socket.receive_json_from(timeout=10)
        assert (frame["verb"], frame["text"], frame["actor"]) == (
            "announcement",
            "maintenance at noon",
            "bob",
        )
        count = 0
        for _ in range(200):  # bounded: 20 s
            count = await database_sync_to_async(Notification.objects.count)()
            if count >= active - 1 and worker.stats["handled"] >= 3:
                break
            await asyncio.sleep(0.1)
    finally:
        worker.stop()
        await asyncio.wait_for(running, 10)
    assert count == active - 1  # everyone but bob, who announced
    per_user = await database_sync_to_async(
        lambda: set(Notification.objects.values_list("recipient__is_active", flat=True))
    )()
    assert per_user == {True}
    assert worker.stats["dead_letters"] == 0
    await socket.disconnect()


class UnreachableLayer(InMemoryChannelLayer):
    """A layer whose server has gone away: every group_send fails."""

    async def group_send(self, group, message):
        raise ConnectionError("channel layer unreachable")


@pytest.mark.django_db
def test_notify_saves_even_when_the_live_push_fails(
    settings, ann, caplog, django_capture_on_commit_callbacks
):
    backend = f"{__name__}.UnreachableLayer"
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": backend}}
    with django_capture_on_commit_callbacks(execute=True):
        [saved] = notify(ann, verb="mention", text="kept though the layer is down")
    assert Notification.objects.get(pk=saved.pk).text == "kept though the layer is down"
    assert "could not push 1 notification events" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_the_database_refuses_a_second_notification_of_one_fanout_for_one_user(ann):
    from django.db import IntegrityError

    Notification.objects.create(recipient=ann, verb="v", text="t", fanout_id="a" * 32)
    with pytest.raises(IntegrityError):
        Notification.objects.create(recipient=ann, verb="v", text="t", fanout_id="a" * 32)
    Notification.objects.create(recipient=ann, verb="v", text="t", fanout_id="b" * 32)
    Notification.objects.create(recipient=ann, verb="v", text="t")  # direct notify(): no fan-out
    Notification.objects.create(recipient=ann, verb="v", text="t")
    assert Notification.objects.filter(recipient=ann).count() == 4


@pytest.mark.django_db(transaction=True)
def test_a_batch_run_again_pushes_what_a_dead_worker_saved_but_never_pushed(
    channel_layer, ann, bob
):
    fanout_id = "c" * 32
    message = {
        "type": protocol.EVENT_FANOUT,
        "fanout_id": fanout_id,
        "verb": "announcement",
        "text": "hello all",
        "url": "",
        "actor_id": None,
        "after_user_id": 0,
    }
    # The first worker saved both and pushed ann's only, then died before marking bob's pushed.
    saved = {
        user.pk: Notification.objects.create(
            recipient=user, verb="announcement", text="hello all", fanout_id=fanout_id,
            push_pending=user == bob,
        )
        for user in (ann, bob)
    }  # fmt: skip

    async def run_again_and_listen() -> dict[int, list[dict]]:
        inboxes = {}
        for user in (ann, bob):
            inboxes[user.pk] = await channel_layer.new_channel()
            await channel_layer.group_add(protocol.user_group(user.pk), inboxes[user.pk])
        await database_sync_to_async(run_fanout_batch)(message)
        received: dict[int, list[dict]] = {ann.pk: [], bob.pk: []}
        for pk, inbox in inboxes.items():
            with contextlib.suppress(TimeoutError):
                while True:
                    received[pk].append(await asyncio.wait_for(channel_layer.receive(inbox), 0.2))
        return received

    received = async_to_sync(run_again_and_listen)()
    assert received[ann.pk] == []
    assert [m["notification"]["id"] for m in received[bob.pk]] == [saved[bob.pk].pk]
    assert Notification.objects.filter(fanout_id=fanout_id).count() == 2
    assert not Notification.objects.filter(push_pending=True).exists()
    assert async_to_sync(run_again_and_listen)() == {ann.pk: [], bob.pk: []}


@pytest.mark.django_db
def test_notify_accepts_fields_of_exactly_the_maximum_length(ann):
    from notifications.services import MAX_URL_LENGTH, MAX_VERB_LENGTH

    url = "/" + "a" * (MAX_URL_LENGTH - 1)
    assert notify(ann, verb="v" * MAX_VERB_LENGTH, text="t", url=url)[0].pk
    with pytest.raises(ValueError, match="verb"):
        notify(ann, verb="v" * (MAX_VERB_LENGTH + 1), text="t")
    with pytest.raises(ValueError, match="url"):
        notify(ann, verb="v", text="t", url=url + "a")
    [whole] = notify(ann, verb="v", text="x" * MAX_TEXT_LENGTH)
    assert whole.text == "x" * MAX_TEXT_LENGTH  # shortened only when longer


@pytest.mark.django_db(transaction=True)
def test_a_fanout_push_the_layer_refuses_stays_pending_for_the_next_run(
    channel_layer, ann, monkeypatch
):
    message = {
        "type": protocol.EVENT_FANOUT,
        "fanout_id": "d" * 32,
        "verb": "announcement",
        "text": "hello all",
        "url": "",
        "actor_id": None,
        "after_user_id": 0,
    }

    async def refuse(group, event):
        raise ConnectionError("layer down")

    with monkeypatch.context() as patch:
        patch.setattr(channel_layer, "group_send", refuse)
        run_fanout_batch(message)
    assert Notification.objects.filter(push_pending=True).count() == 1  # saved, not pushed

    async def listen() -> list[dict]:
        inbox = await channel_layer.new_channel()
        await channel_layer.group_add(protocol.user_group(ann.pk), inbox)
        await database_sync_to_async(run_fanout_batch)(message)
        return [await asyncio.wait_for(channel_layer.receive(inbox), 2)]

    [pushed] = async_to_sync(listen)()
    assert pushed["notification"]["text"] == "hello all"
    assert not Notification.objects.filter(push_pending=True).exists()


@pytest.mark.django_db
def test_a_feed_of_exactly_one_page_says_nothing_more_is_waiting(ann):
    from notifications.services import notifications_after

    for n in range(protocol.POLL_MAX_NOTIFICATIONS):
        notify(ann, verb="v", text=f"more {n}")
    page, has_more = notifications_after(ann.pk, 0)
    assert (len(page), has_more) == (protocol.POLL_MAX_NOTIFICATIONS, False)
    notify(ann, verb="v", text="one too many")
    page, has_more = notifications_after(ann.pk, 0)
    assert (len(page), has_more) == (protocol.POLL_MAX_NOTIFICATIONS, True)
