"""Posting writes with plain SQL (`chat.services._insert`, `_next_seq`): what is saved is what
the ORM would have saved, numbered in order, once each. History pages read with plain SQL
(`visible_rows`, `message_frames`): what the ORM would have read."""

import pytest
from django.test import Client
from django.utils import timezone

from chat import attachments, protocol, services
from chat.models import Message
from chat.tests.conftest import png_bytes, upload

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


def orm_frames(room, **filters) -> list[dict]:
    """The room's visible messages' frames as the ORM reads them (what `visible_rows` and
    `message_frames` read with plain SQL must equal)."""
    rows = list(
        Message.objects.filter(room=room, deleted__isnull=True, **filters)
        .select_related("reply_to").order_by("seq")
        .prefetch_related("reactions", "attachments")
    )  # fmt: skip
    return [
        services.message_frame(
            m,
            room.slug,
            services.reaction_summary(sorted(m.reactions.all(), key=lambda r: r.pk)),
            [attachments.entry(a) for a in sorted(m.attachments.all(), key=lambda a: a.pk)],
        )
        for m in rows
    ]


def test_history_read_with_plain_sql_is_what_the_orm_reads(room, alice, bob, settings, tmp_path):
    """Every kind of message a page can hold: replies (to a live, an edited and a deleted
    message), reactions from several people, attachments (an image with a thumbnail, a text
    file), an edit, a deletion, an announcement."""
    settings.MEDIA_ROOT = str(tmp_path)
    first = services.post_message(alice, room, "first").frame["id"]
    edited = services.post_message(bob, room, "typo").frame["id"]
    gone = services.post_message(alice, room, "soon deleted").frame["id"]
    for reply_to in (first, edited, gone):
        services.post_message(bob, room, f"re {reply_to}", reply_to=reply_to)
    services.edit_message(bob, room, edited, "fixed")
    services.delete_message(alice, gone, room)
    for user, emoji in [(alice, protocol.REACTION_EMOJI[0]), (bob, protocol.REACTION_EMOJI[0]),
                        (bob, protocol.REACTION_EMOJI[1])]:  # fmt: skip
        services.react(user, room, first, emoji)
    client = Client()
    client.force_login(alice)
    ids = [
        upload(client, room.slug, name, data).json()["attachment"]["id"]
        for name, data in [("photo.png", png_bytes()), ("notes.txt", b"plain notes\n")]
    ]
    services.post_message(alice, room, "files", attachment_ids=ids)
    services.post_message(alice, room, "hear ye", kind=protocol.KIND_ANNOUNCEMENT)
    room.refresh_from_db()

    expected = orm_frames(room)
    assert len(expected) == 7
    assert any(f["attachments"] and f["attachments"][0]["thumbnail_url"] for f in expected)
    assert services.history_page(alice, room)["messages"] == expected
    assert services.history_page(alice, room, upto_seq=room.seq)["messages"] == expected
    middle = expected[3]["id"]
    assert services.history_page(alice, room, before=middle)["messages"] == orm_frames(
        room, id__lt=middle
    )
    assert services.replay_after(alice, room, middle, room.seq)["messages"] == orm_frames(
        room, id__gt=middle
    )
