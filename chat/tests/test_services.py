"""chat.services: numbering of room events, catch-up frames, mentions, moderation rules."""

import pytest
from django.contrib.auth.models import AnonymousUser

from chat import protocol
from chat.models import AuditEntry, Message, Room
from chat.services import (
    ChatError,
    announce,
    delete_message,
    edit_message,
    events_between,
    history_page,
    mentioned_usernames,
    mute_user,
    notify_announcement,
    post_message,
    replay_after,
)

pytestmark = pytest.mark.django_db

ANYONE = AnonymousUser()  # a public room is read by anyone


def test_room_events_are_numbered_without_gaps_per_room(room, alice):
    other = Room.objects.create(slug="other")
    seqs = [post_message(alice, room, "a").seq, post_message(alice, other, "b").seq]
    seqs.append(post_message(alice, room, "c").seq)
    first = seqs[0]
    assert seqs == [first, 1, first + 1]
    edit = edit_message(alice, room, post_message(alice, room, "d").frame["id"], "e")
    assert edit.seq == first + 3


def test_events_between_shows_messages_created_in_the_range_as_they_are_now(room, alice):
    before = post_message(alice, room, "before the gap")
    changed = post_message(alice, room, "draft")
    edit_message(alice, room, changed.frame["id"], "final")
    removed = post_message(alice, room, "removed")
    delete_message(alice, removed.frame["id"], room)
    late = post_message(alice, room, "late")
    frames = events_between(ANYONE, room, before.seq, late.seq)
    assert [(f["type"], f["id"], f["text"]) for f in frames] == [
        (protocol.MESSAGE, changed.frame["id"], "final"),
        (protocol.MESSAGE, late.frame["id"], "late"),
    ]


def test_events_between_sends_edits_of_messages_older_than_the_range(room, alice):
    old = post_message(alice, room, "old")
    edited = edit_message(alice, room, old.frame["id"], "old, edited")
    frames = events_between(ANYONE, room, old.seq, edited.seq)
    assert [(f["type"], f["id"], f["text"]) for f in frames] == [
        (protocol.EDITED, old.frame["id"], "old, edited")
    ]


def test_events_between_includes_a_message_edited_after_the_range(room, alice):
    before = post_message(alice, room, "before")
    created = post_message(alice, room, "draft")
    edit_message(alice, room, created.frame["id"], "final")
    frames = events_between(ANYONE, room, before.seq, created.seq)
    assert [(f["type"], f["text"]) for f in frames] == [(protocol.MESSAGE, "final")]


def test_events_between_reports_deletion_of_an_older_message(room, alice):
    old = post_message(alice, room, "old")
    deleted, _ = delete_message(alice, old.frame["id"], room)
    frames = events_between(ANYONE, room, old.seq, deleted.seq)
    assert frames == [{"type": protocol.DELETED, "id": old.frame["id"], "room": "general",
                       "seq": deleted.seq}]  # fmt: skip


def test_history_page_hides_deleted_messages(room, alice):
    post_message(alice, room, "visible")
    gone = post_message(alice, room, "gone")
    delete_message(alice, gone.frame["id"], room)
    assert [m["text"] for m in history_page(ANYONE, room)["messages"]] == ["visible"]


def test_replay_after_holds_exactly_the_missed_messages(room, alice):
    first = post_message(alice, room, "seen")
    last = [post_message(alice, room, f"m{n}") for n in range(5)][-1]
    frame = replay_after(ANYONE, room, first.frame["id"], last.seq)
    assert [m["text"] for m in frame["messages"]] == [f"m{n}" for n in range(5)]
    assert frame["after"] == first.frame["id"]


def test_a_replay_over_the_cap_is_refused(room, alice, monkeypatch):
    monkeypatch.setattr(protocol, "REPLAY_MAX_MESSAGES", 3)
    first = post_message(alice, room, "seen")
    last = [post_message(alice, room, f"m{n}") for n in range(4)][-1]
    assert replay_after(ANYONE, room, first.frame["id"], last.seq) is None
    assert len(replay_after(ANYONE, room, first.frame["id"] + 1, last.seq)["messages"]) == 3


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("hi @bob", {"bob"}),
        ("@alice and @bob.", {"alice", "bob"}),
        ("mail me at bob@example.com", set()),
        ("@@bob", set()),
        ("(@carol)", {"carol"}),
        ("@first.last-name+x!", {"first.last-name+x"}),
    ],
)
def test_mentioned_usernames(text, names):
    assert mentioned_usernames(text) == names


def test_non_staff_cannot_delete_someone_elses_message(room, alice, bob):
    event = post_message(alice, room, "mine")
    with pytest.raises(ChatError) as refused:
        delete_message(bob, event.frame["id"], room)
    assert refused.value.code == protocol.NOT_ALLOWED


def test_author_deleting_own_fresh_message_is_not_audited(room, alice):
    event = post_message(alice, room, "oops")
    _, entry = delete_message(alice, event.frame["id"], room)
    assert entry is None
    assert not AuditEntry.objects.exists()


def test_announcement_is_posted_in_every_room_and_audited(room, moderator, channel_layer):
    Room.objects.create(slug="random")
    events, entry = announce(moderator, "hello everyone")
    assert sorted(e.room for e in events) == ["general", "random"]
    assert all(e.frame["kind"] == protocol.KIND_ANNOUNCEMENT for e in events)
    assert (entry.action, entry.actor_name) == (AuditEntry.ACTION_ANNOUNCE, "mod")


def test_muted_poster_is_told_for_how_long(room, alice, moderator):
    from chat.services import mute_user

    mute_user(moderator, "alice", None, 5)
    with pytest.raises(ChatError) as refused:
        post_message(alice, room, "hello?")
    assert refused.value.code == protocol.MUTED
    assert refused.value.detail == "A moderator muted you in every room for 5 more minutes."


def test_a_mute_holds_in_its_own_room_only_and_ends_on_time(room, alice, moderator):
    from datetime import timedelta

    from django.utils import timezone

    from chat.models import Mute

    other = Room.objects.create(slug="other")
    mute = Mute.objects.create(user=alice, room=other, until=timezone.now() + timedelta(minutes=1))
    post_message(alice, room, "still allowed here")
    with pytest.raises(ChatError) as refused:
        post_message(alice, other, "not here")
    assert refused.value.detail == "A moderator muted you here for 1 more minute."
    Mute.objects.filter(pk=mute.pk).update(until=timezone.now() - timedelta(seconds=1))
    assert post_message(alice, other, "the mute is over").frame["text"] == "the mute is over"


# -- Moderation checks the actor's rights itself, whoever calls it -------------------------------


@pytest.mark.parametrize(
    "action",
    [
        lambda actor: mute_user(actor, "bob", None, 60),
        lambda actor: announce(actor, "pwned"),
        lambda actor: notify_announcement(actor, "pwned"),
    ],
    ids=["mute", "announce", "notify-announcement"],
)
def test_moderation_refuses_a_non_staff_actor(room, alice, bob, channel_layer, action):
    from chat.models import Message, Mute

    with pytest.raises(ChatError) as refused:
        action(alice)
    assert refused.value.code == protocol.NOT_ALLOWED
    assert not Mute.objects.exists()
    assert not Message.objects.filter(kind=protocol.KIND_ANNOUNCEMENT).exists()
    assert not AuditEntry.objects.exists()


def test_moderation_reads_rights_from_the_database_not_the_callers_copy(room, moderator, bob):
    stale = type(moderator).objects.get(pk=moderator.pk)  # what an open socket holds
    type(moderator).objects.filter(pk=moderator.pk).update(is_staff=False)
    assert stale.is_staff
    with pytest.raises(ChatError) as refused:
        mute_user(stale, "bob", None, 60)
    assert refused.value.code == protocol.NOT_ALLOWED
    event = post_message(bob, room, "not yours to delete")
    with pytest.raises(ChatError):
        delete_message(stale, event.frame["id"])


def test_a_retried_announcement_is_posted_once(room, moderator, channel_layer):
    from chat.models import Message

    first, entry = announce(moderator, "once", "console-1")
    again, no_entry = announce(moderator, "once", "console-1")
    assert len(first) == 1 and entry is not None
    assert (again, no_entry) == ([], None)
    assert Message.objects.filter(kind=protocol.KIND_ANNOUNCEMENT).count() == 1
    assert AuditEntry.objects.count() == 1


def test_the_same_client_id_is_one_message_per_sender_and_room(room, alice, bob):
    """Idempotent posting: a retry returns the stored message (echo, nothing to broadcast); the
    same client_id from another sender or in another room is another message."""
    from chat.services import post_message

    first = post_message(alice, room, "hello", client_id="c-1")
    retry = post_message(alice, room, "hello", client_id="c-1")
    assert first.echo == ()
    assert retry.echo and retry.echo[0]["id"] == first.frame["id"]
    assert retry.seq == first.seq
    other_sender = post_message(bob, room, "hello", client_id="c-1")
    elsewhere = post_message(alice, Room.objects.create(slug="other"), "hello", client_id="c-1")
    assert not other_sender.echo and not elsewhere.echo
    no_id = [post_message(alice, room, "same", client_id="") for _ in range(2)]
    assert len({event.frame["id"] for event in no_id}) == 2
    assert Message.objects.filter(room=room).count() == 4
    assert sorted(Message.objects.filter(room=room).values_list("seq", flat=True)) == [1, 2, 3, 4]
