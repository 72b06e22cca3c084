"""Posting writes with plain SQL (`chat.services._insert`, `_next_seq`): what is saved is what
the ORM would have saved, numbered in order, once each."""

import pytest
from django.utils import timezone

from chat import protocol, services
from chat.models import Message

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_posted_message_is_saved_with_every_field_and_its_frame_matches(room, alice):
    before = timezone.now()
    event = services.post_message(alice, room, "hello there", "client-7")
    saved = Message.objects.get(pk=event.frame["id"])
    assert (saved.room_id, saved.user_id, saved.username) == (room.pk, alice.pk, "alice")
    assert (saved.text, saved.client_id, saved.kind) == ("hello there", "client-7", "message")
    assert (saved.seq, saved.event_seq) == (event.seq, event.seq)
    assert saved.edited is None and saved.deleted is None
    assert before <= saved.created <= timezone.now()
    assert event.frame == services.message_frame(saved, room.slug)
    assert event.frame["ts"] == saved.created.isoformat()


def test_messages_are_numbered_in_order_without_gaps_or_duplicates(room, alice, bob):
    events = [services.post_message((alice, bob)[n % 2], room, f"m{n}") for n in range(30)]
    assert [e.seq for e in events] == list(range(1, 31))
    rows = list(Message.objects.filter(room=room).order_by("seq"))
    assert [m.text for m in rows] == [f"m{n}" for n in range(30)]
    assert [m.pk for m in rows] == sorted(m.pk for m in rows)
    assert [m.pk for m in rows] == [e.frame["id"] for e in events]
    room.refresh_from_db()
    assert room.seq == 30


def test_an_announcement_keeps_its_kind(room, moderator):
    event = services.post_message(
        moderator, room, "maintenance at 5", kind=protocol.KIND_ANNOUNCEMENT
    )
    assert Message.objects.get(pk=event.frame["id"]).kind == protocol.KIND_ANNOUNCEMENT


def test_history_after_edits_and_deletions_shows_each_message_as_it_is_now(room, alice):
    kept, edited, deleted = (services.post_message(alice, room, t) for t in ("a", "b", "c"))
    services.edit_message(alice, room, edited.frame["id"], "b, fixed")
    services.delete_message(alice, deleted.frame["id"], room)
    page = services.history_page(alice, room)
    assert [(m["text"], m["edited"]) for m in page["messages"]] == [
        ("a", False),
        ("b, fixed", True),
    ]
    frames = services.events_between(alice, room, 0, 5)
    assert [f["type"] for f in frames] == [protocol.MESSAGE, protocol.MESSAGE]
    assert [f["id"] for f in frames] == [kept.frame["id"], edited.frame["id"]]
