"""What notifies a reader (chat.attention) and the e-mail about unread mentions and DMs
(chat.mail): the per-room level over the socket and its checks, the bell respecting it, and the
sweep — delay, read in time, restarts, concurrent sweeps, failed sends, lost access, batching."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core import mail as django_mail
from django.core.management import call_command
from django.utils import timezone

from chat import attention, membership, protocol, services
from chat.mail import MAX_LISTED, sweep
from chat.models import NotifySetting, PendingMail
from chat.services import ChatError
from chat.tests.conftest import join_room, make_user, next_of_type
from notifications.models import Notification
from realtime.db import database_sync_to_async

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def carol(transactional_db):
    return make_user("carol")


def post(author, room, text):
    """Post as the room socket does: save, then let chat.attention see it."""
    event = services.post_message(author, room, text)
    attention.message_posted(author, room, event)
    return event


def later(minutes: float):
    return timezone.now() + timedelta(minutes=minutes)


# --- levels -----------------------------------------------------------------------------------


async def test_a_member_sets_the_level_on_the_socket_and_gets_it_back(room, bob):
    socket, _ = await join_room(room.slug, bob)
    await socket.send_json_to({"type": protocol.NOTIFY, "level": protocol.NOTIFY_ALL})
    answer = await next_of_type(socket, protocol.NOTIFY)
    assert answer == {"type": "notify", "room": room.slug, "level": "all"}
    level = await database_sync_to_async(attention.level)(bob, room)
    assert level == protocol.NOTIFY_ALL
    await socket.send_json_to({"type": protocol.NOTIFY, "level": "loud"})
    error = await next_of_type(socket, protocol.ERROR)
    assert error["code"] == protocol.INVALID and "mentions" in error["detail"]
    await socket.disconnect()


async def test_an_anonymous_reader_cannot_set_a_level(room):
    socket, _ = await join_room(room.slug)
    await socket.send_json_to({"type": protocol.NOTIFY, "level": protocol.NOTIFY_ALL})
    error = await next_of_type(socket, protocol.ERROR)
    assert error["code"] == protocol.LOGIN_REQUIRED
    count = await database_sync_to_async(NotifySetting.objects.count)()
    assert count == 0
    await socket.disconnect()


def test_the_default_level_is_mentions_and_setting_it_back_keeps_no_row(room, bob):
    assert attention.level(bob, room) == protocol.NOTIFY_MENTIONS
    attention.set_level(bob, room, protocol.NOTIFY_NOTHING)
    assert attention.level(bob, room) == protocol.NOTIFY_NOTHING
    attention.set_level(bob, room, protocol.NOTIFY_MENTIONS)
    assert not NotifySetting.objects.exists()
    assert attention.level(AnonymousUser(), room) == protocol.NOTIFY_MENTIONS


def test_a_room_set_to_nothing_gets_no_mention_in_the_bell(room, alice, bob, carol):
    attention.set_level(bob, room, protocol.NOTIFY_NOTHING)
    post(alice, room, "@bob @carol look")
    assert list(Notification.objects.values_list("recipient__username", flat=True)) == ["carol"]


def test_the_mail_delay_is_one_of_the_choices(bob):
    assert attention.mail_delay(bob) == protocol.DEFAULT_MAIL_DELAY_MINUTES
    assert attention.set_mail_delay(bob, "60") == 60
    with pytest.raises(ChatError) as error:
        attention.set_mail_delay(bob, "7")
    assert error.value.code == protocol.INVALID
    assert attention.mail_delay(bob) == 60


def test_the_settings_page_saves_the_delay_and_levels(client, room, bob):
    client.force_login(bob)
    response = client.post(
        "/chat/notifications/", {"delay": "5", f"level-{room.slug}": protocol.NOTIFY_ALL}
    )
    assert response.status_code == 302
    assert attention.mail_delay(bob) == 5
    assert attention.level(bob, room) == protocol.NOTIFY_ALL
    page = client.get("/chat/notifications/").content.decode()
    assert '<option value="5" selected>' in page and '<option value="all" selected>' in page


# --- the e-mail sweep -------------------------------------------------------------------------


def test_a_mention_is_mailed_once_its_delay_has_passed(room, alice, bob, mailoutbox):
    attention.set_mail_delay(bob, 5)
    event = post(alice, room, "@bob can you review the release notes?")
    assert sweep(later(4)) == 0
    assert mailoutbox == []
    assert sweep(later(6)) == 1
    [sent] = mailoutbox
    assert sent.to == ["bob@example.com"]
    assert sent.subject == "alice mentioned you in #general"
    assert "can you review the release notes?" in sent.body
    assert f"/rooms/general/#message-{event.frame['id']}" in sent.body


def test_a_mention_read_before_its_delay_is_never_mailed(room, alice, bob, mailoutbox):
    event = post(alice, room, "@bob quick question")
    services.mark_read(bob, room, event.frame["id"])
    assert sweep(later(60)) == 0
    assert mailoutbox == []
    assert not PendingMail.objects.exists()


def test_a_later_sweep_or_a_restart_never_mails_twice(room, alice, bob, mailoutbox):
    post(alice, room, "@bob once only")
    assert sweep(later(20)) == 1
    # A restarted process knows nothing but the database: its sweeps find nothing to send.
    assert sweep(later(30)) == 0
    call_command("send_unread_mail")
    assert len(mailoutbox) == 1


def test_a_sweep_that_dies_after_taking_its_rows_is_not_repeated(room, alice, bob, mailoutbox):
    post(alice, room, "@bob in flight")
    # What a sweep killed between taking and sending leaves behind: rows taken, nothing sent.
    PendingMail.objects.update(claim="a-dead-sweep", mailed=timezone.now())
    assert sweep(later(20)) == 0
    assert mailoutbox == []


class FailingBackend:
    """An e-mail backend whose server is down."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("the mail server is down")


def test_a_failed_send_is_retried_by_the_next_sweep(room, alice, bob, settings, mailoutbox):
    post(alice, room, "@bob try again")
    settings.EMAIL_BACKEND = f"{__name__}.FailingBackend"
    assert sweep(later(20)) == 0
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert sweep(later(21)) == 1
    assert len(mailoutbox) == 1 and "try again" in mailoutbox[0].body


def test_someone_removed_from_a_private_room_is_not_mailed(alice, bob, mailoutbox):
    secret, _ = membership.create_private_room(alice, "Secret")
    membership.invite(alice, secret, "bob")
    membership.accept(bob, secret)
    post(alice, secret, "@bob the secret plan")
    assert PendingMail.objects.filter(user=bob).exists()
    membership.remove(alice, secret, "bob")
    assert sweep(later(20)) == 0
    assert mailoutbox == []


def test_unread_mentions_and_dms_are_batched_into_one_mail(room, alice, bob, carol, mailoutbox):
    dm, _ = membership.open_dm(carol, "bob")
    post(alice, room, "@bob first")
    post(alice, room, "@bob second")
    post(carol, dm, "lunch?")
    post(alice, room, "@carol not for bob")
    assert sweep(later(20)) == 2
    [to_bob] = [m for m in mailoutbox if m.to == ["bob@example.com"]]
    assert to_bob.subject == "3 unread messages for you on Switchboard"
    for text in ("first", "second", "lunch?"):
        assert text in to_bob.body
    assert "not for bob" not in to_bob.body


def test_no_mail_without_an_address_with_mail_off_or_for_a_silenced_room(
    room, alice, bob, carol, mailoutbox
):
    dave = make_user("dave")
    dave.email = ""
    dave.save()
    attention.set_mail_delay(carol, 0)
    post(alice, room, "@bob @carol @dave hello")
    attention.set_level(bob, room, protocol.NOTIFY_NOTHING)
    assert sweep(later(60 * 24)) == 0
    assert mailoutbox == []


def test_a_deleted_message_is_not_mailed(room, alice, bob, mailoutbox):
    event = post(alice, room, "@bob oops")
    services.delete_message(alice, event.frame["id"], room)
    assert sweep(later(20)) == 0
    assert mailoutbox == []


def test_mailed_rows_are_forgotten_after_a_week(room, alice, bob, mailoutbox):
    post(alice, room, "@bob old news")
    sweep(later(20))
    assert PendingMail.objects.filter(mailed__isnull=False).count() == 1
    sweep(later(20) + timedelta(days=8))
    assert not PendingMail.objects.exists()


async def test_the_room_socket_records_mentions_and_dm_messages(room, alice, bob):
    socket, _ = await join_room(room.slug, alice)
    await socket.send_json_to({"type": "message", "text": "@bob over here"})
    await next_of_type(socket, protocol.MESSAGE)
    dm, _ = await database_sync_to_async(membership.open_dm)(alice, "bob")
    dm_socket, _ = await join_room(dm.slug, alice)
    await dm_socket.send_json_to({"type": "message", "text": "psst"})
    await next_of_type(dm_socket, protocol.MESSAGE)

    def recorded():
        return sorted(PendingMail.objects.values_list("user__username", "reason"))

    # The socket records them after it has broadcast the message: wait for it (bounded).
    expected = [("bob", "dm"), ("bob", "mention")]
    for _ in range(100):
        if await database_sync_to_async(recorded)() == expected:
            break
        await asyncio.sleep(0.02)
    assert await database_sync_to_async(recorded)() == expected
    await socket.disconnect()
    await dm_socket.disconnect()
    assert await database_sync_to_async(sweep)(later(20)) == 1
    assert len(django_mail.outbox) == 1


def test_a_long_unread_dm_is_one_mail_that_lists_the_first_messages(alice, bob, mailoutbox):
    dm, _ = membership.open_dm(alice, "bob")
    for index in range(MAX_LISTED + 5):
        post(alice, dm, f"line {index}")
    assert sweep(later(20)) == 1
    [sent] = mailoutbox
    assert sent.subject == f"{MAX_LISTED + 5} unread messages for you on Switchboard"
    assert f"line {MAX_LISTED - 1}\n" in sent.body and f"line {MAX_LISTED}\n" not in sent.body
    assert "…and 5 more." in sent.body
