"""Private rooms and DMs: every path that reads a room checks membership (one test per path), the
membership rules themselves, removal while connected, and an inventory of every URL and socket
route so a new path cannot skip the check unnoticed."""

from __future__ import annotations

import asyncio
import json
import re
import time

import pytest
from django.contrib.auth.models import AnonymousUser, Permission
from django.test import Client
from django.urls import URLResolver, get_resolver

from chat import access, attention, broadcast, membership, protocol, services
from chat.models import Attachment, MemberEvent, Membership, NotifySetting, Room
from chat.presence import presence
from chat.services import ChatError
from chat.tests.conftest import join_room, make_user, next_of_type, open_socket, png_bytes, upload
from notifications.models import Notification
from realtime.db import database_sync_to_async
from realtime.tests.helpers import batch_sizes

pytestmark = pytest.mark.django_db(transaction=True)

REMOVAL_DEADLINE_SECONDS = 2.0


@pytest.fixture
def carol(transactional_db):
    return make_user("carol")


@pytest.fixture
def secret(alice, bob):
    """A private room: alice owns it, bob has joined, nobody else is in it."""
    room, _ = membership.create_private_room(alice, "Secret plans")
    membership.invite(alice, room, "bob")
    membership.accept(bob, room)
    room.refresh_from_db()
    return room


def client_for(user) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def refused(call, *args) -> str:
    with pytest.raises(ChatError) as error:
        call(*args)
    return error.value.code


async def closed_code(socket, timeout: float = 1) -> int:
    """Read a socket's output until it closes (bounded); returns the close code."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        assert left > 0, "the socket was not closed in time"
        output = await socket.receive_output(left)
        if output["type"] == "websocket.close":
            return output["code"]


# --- chat.access ----------------------------------------------------------------------------


def test_readable_rooms_are_public_rooms_and_joined_ones(room, secret, alice, bob, carol):
    other, _ = membership.create_private_room(carol, "Carol's")
    membership.invite(carol, other, "alice")  # invited, not joined
    assert set(access.readable_rooms(alice)) == {room, secret}
    assert set(access.readable_rooms(carol)) == {room, other}
    assert set(access.readable_rooms(AnonymousUser())) == {room}


def test_a_staff_account_is_not_a_member_by_being_staff(secret, moderator):
    assert not access.can_read(moderator, secret)
    assert refused(services.history_page, moderator, secret) == protocol.NOT_MEMBER


# --- services: one test per path, with a non-member ------------------------------------------


def test_non_member_cannot_read_history_replay_or_events(secret, alice, carol):
    posted = services.post_message(alice, secret, "the plan")
    assert refused(services.history_page, carol, secret) == protocol.NOT_MEMBER
    assert refused(services.replay_after, carol, secret, 0, posted.seq) == protocol.NOT_MEMBER
    assert refused(services.events_between, carol, secret, 0, posted.seq) == protocol.NOT_MEMBER
    anonymous = AnonymousUser()
    assert refused(services.history_page, anonymous, secret) == protocol.NOT_MEMBER
    page = services.history_page(alice, secret)
    assert [m["text"] for m in page["messages"]] == ["the plan"]


def test_non_member_cannot_post_edit_delete_or_mark_read(secret, alice, carol):
    posted = services.post_message(alice, secret, "mine")
    message_id = posted.frame["id"]
    assert refused(services.post_message, carol, secret, "hello?") == protocol.NOT_MEMBER
    assert refused(services.edit_message, carol, secret, message_id, "x") == protocol.NOT_MEMBER
    assert refused(services.delete_message, carol, message_id, secret) == protocol.NOT_MEMBER
    assert refused(services.mark_read, carol, secret, message_id) == protocol.NOT_MEMBER
    assert services.history_page(alice, secret)["messages"][0]["text"] == "mine"


def test_unread_counts_only_cover_readable_rooms(room, secret, alice, bob, carol):
    services.post_message(alice, secret, "one")
    services.post_message(alice, secret, "two")
    assert {r.slug: r.unread for r in services.rooms_with_unread(bob)}[secret.slug] == 2
    assert secret.slug not in {r.slug for r in services.rooms_with_unread(carol)}
    assert secret.slug not in {r.slug for r in services.rooms_with_unread(AnonymousUser())}


def test_mentions_in_a_private_room_notify_members_only(secret, alice, bob, carol):
    event = services.post_message(alice, secret, "@bob and @carol, look")
    assert services.notify_mentions(alice, event) == 1
    assert list(Notification.objects.values_list("recipient__username", flat=True)) == ["bob"]


def test_announcements_go_to_public_rooms_only(room, secret, moderator):
    events, _ = services.announce(moderator, "maintenance at noon")
    assert [event.room for event in events] == [room.slug]
    assert not secret.messages.exists()


def test_a_moderators_deletion_in_a_private_room_keeps_the_text_out_of_the_audit_log(
    secret, alice, moderator
):
    posted = services.post_message(alice, secret, "very private words")
    _, entry = services.delete_message(moderator, posted.frame["id"])
    assert "very private words" not in entry.detail
    assert "private room" in entry.detail


# --- membership rules ------------------------------------------------------------------------


def test_invite_accept_decline_leave_and_remove(alice, bob, carol):
    room, _ = membership.create_private_room(alice, "Team")
    membership.invite(alice, room, "bob")
    assert not access.can_read(bob, room)  # invited is not joined
    membership.accept(bob, room)
    assert access.can_read(bob, room)
    membership.invite(bob, room, "carol")  # any member invites
    membership.decline(carol, room)
    assert access.membership(carol, room) is None
    assert refused(membership.remove, bob, room, "alice") == protocol.NOT_ALLOWED  # not owner
    membership.remove(alice, room, "bob")
    assert not access.can_read(bob, room)
    actions = list(MemberEvent.objects.filter(room=room).values_list("action", "username"))
    assert actions == [
        ("joined", "alice"),
        ("invited", "bob"),
        ("joined", "bob"),
        ("invited", "carol"),
        ("declined", "carol"),
        ("removed", "bob"),
    ]


def test_non_member_cannot_invite_and_nobody_invites_twice(secret, alice, carol):
    assert refused(membership.invite, carol, secret, "carol") == protocol.NOT_MEMBER
    assert refused(membership.invite, alice, secret, "bob") == protocol.INVALID
    assert refused(membership.invite, alice, secret, "nobody") == protocol.NOT_FOUND


def test_an_owner_who_leaves_hands_the_room_to_the_next_member(secret, alice, bob):
    membership.leave(alice, secret)
    assert Membership.objects.get(room=secret, user=bob).role == Membership.ROLE_OWNER
    assert refused(services.history_page, alice, secret) == protocol.NOT_MEMBER


def test_staff_may_remove_people_from_a_private_room(secret, bob, moderator):
    membership.remove(moderator, secret, "bob")
    assert not access.can_read(bob, secret)


def test_dm_is_one_room_per_set_of_people(alice, bob, carol):
    dm, events = membership.open_dm(alice, "bob")
    assert dm.kind == protocol.ROOM_DM and len(events) == 2
    again, more = membership.open_dm(bob, ["alice"])
    assert again == dm and more == []
    group, _ = membership.open_dm(carol, "alice, bob")
    assert group != dm
    assert {m["user"] for m in membership.members(alice, group)} == {"alice", "bob", "carol"}
    assert not access.can_read(carol, dm)


def test_dm_limits_and_fixed_membership(alice, bob, carol):
    for index in range(protocol.MAX_DM_PEOPLE):
        make_user(f"user{index}")
    names = [f"user{index}" for index in range(protocol.MAX_DM_PEOPLE)]
    assert refused(membership.open_dm, alice, names) == protocol.INVALID
    assert refused(membership.open_dm, alice, "alice") == protocol.EMPTY
    assert refused(membership.open_dm, alice, "ghost") == protocol.NOT_FOUND
    dm, _ = membership.open_dm(alice, "bob")
    assert refused(membership.invite, alice, dm, "carol") == protocol.NOT_ALLOWED
    assert refused(membership.leave, alice, dm) == protocol.NOT_ALLOWED
    assert refused(membership.remove, alice, dm, "bob") == protocol.NOT_ALLOWED


def test_dm_is_never_announced_into(alice, bob, moderator, room):
    dm, _ = membership.open_dm(alice, "bob")
    services.announce(moderator, "hello everyone")
    assert not dm.messages.exists()


def test_private_room_slugs_cannot_be_guessed(alice):
    room, _ = membership.create_private_room(alice, "general")
    assert re.fullmatch(r"p-[0-9a-f]{12}", room.slug)


def test_membership_changes_are_numbered_room_events_that_replay(secret, alice, bob, carol):
    before = Room.objects.get(pk=secret.pk).seq
    services.post_message(alice, secret, "hi")
    membership.invite(alice, secret, "carol")
    membership.accept(carol, secret)
    frames = services.events_between(alice, secret, before, Room.objects.get(pk=secret.pk).seq)
    assert [(f["type"], f.get("action"), f["seq"]) for f in frames] == [
        (protocol.MESSAGE, None, before + 1),
        (protocol.MEMBER, "invited", before + 2),
        (protocol.MEMBER, "joined", before + 3),
    ]


# --- pages and HTTP API -----------------------------------------------------------------------


def test_room_page_is_404_for_non_members_and_anonymous(secret, alice, carol):
    assert client_for(carol).get(f"/rooms/{secret.slug}/").status_code == 404
    assert client_for(None).get(f"/rooms/{secret.slug}/").status_code == 404
    page = client_for(alice).get(f"/rooms/{secret.slug}/")
    assert page.status_code == 200
    assert "Secret plans" in page.content.decode()


def test_invited_person_sees_only_the_invitation(secret, alice, carol):
    services.post_message(alice, secret, "not for the invited")
    membership.invite(alice, secret, "carol")
    page = client_for(carol).get(f"/rooms/{secret.slug}/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "invited you" in text and "not for the invited" not in text
    assert 'id="chat-app"' not in text


def test_room_list_and_counts_api_hide_rooms_the_user_cannot_read(secret, room, alice, carol):
    assert secret.slug not in client_for(carol).get("/").content.decode()
    assert "Secret plans" in client_for(alice).get("/").content.decode()
    counts = client_for(carol).get("/api/chat/rooms/").json()["rooms"]
    assert secret.slug not in counts and room.slug in counts
    assert secret.slug in client_for(alice).get("/api/chat/rooms/").json()["rooms"]


def test_members_api_is_404_for_non_members(secret, alice, carol):
    url = f"/api/chat/rooms/{secret.slug}/members/"
    assert client_for(carol).get(url).status_code == 404
    assert client_for(None).get(url).status_code == 404
    people = client_for(alice).get(url).json()["members"]
    assert {(p["user"], p["role"]) for p in people} == {("alice", "owner"), ("bob", "member")}


def _shared_file(room, owner, media_root) -> dict:
    """A text file `owner` uploaded to `room` and posted there; its frame entry."""
    response = upload(client_for(owner), room.slug, "plans.txt", b"the secret plans\n")
    assert response.status_code == 201
    entry = response.json()["attachment"]
    services.post_message(owner, room, "plans attached", attachment_ids=[entry["id"]])
    return entry


def test_attachments_of_a_private_room_are_404_for_non_members(
    secret, alice, bob, carol, media_root
):
    entry = _shared_file(secret, alice, media_root)
    assert client_for(bob).get(entry["url"]).status_code == 200
    for outsider in (carol, None):
        assert client_for(outsider).get(entry["url"]).status_code == 404
    refused = upload(client_for(carol), secret.slug, "mine.txt", b"let me in\n")
    assert refused.status_code == 404
    assert Attachment.objects.count() == 1


def test_a_removed_member_loses_access_to_the_rooms_attachments(secret, alice, bob, media_root):
    picture = upload(client_for(alice), secret.slug, "map.png", png_bytes()).json()["attachment"]
    services.post_message(alice, secret, "the map", attachment_ids=[picture["id"]])
    reader = client_for(bob)
    assert reader.get(picture["thumbnail_url"]).status_code == 200
    membership.remove(alice, secret, "bob")
    assert reader.get(picture["url"]).status_code == 404
    assert reader.get(picture["thumbnail_url"]).status_code == 404
    assert upload(reader, secret.slug, "late.txt", b"too late\n").status_code == 404


def test_enumerating_attachment_ids_finds_nothing_outside_your_rooms(
    secret, alice, bob, carol, moderator, media_root
):
    """Ids are sequential, so walk them all: files of a private room, a DM, an upload not sent
    yet and a deleted message's file, as an outsider, an invited person who has not accepted,
    anonymously and as staff with the right to read private messages in the console (staff are
    not members by being staff). Every one is 404, like an id that does not exist."""
    dm, _ = membership.open_dm(alice, "bob")
    entries = [_shared_file(secret, alice, media_root), _shared_file(dm, bob, media_root)]
    picture = upload(client_for(alice), secret.slug, "m.png", png_bytes()).json()["attachment"]
    entries.append(picture)  # not sent yet: its uploader's alone
    gone = _shared_file(secret, bob, media_root)
    services.delete_message(bob, Attachment.objects.get(pk=gone["id"]).message_id, secret)
    dave = make_user("dave")
    membership.invite(alice, secret, "dave")
    moderator.user_permissions.add(Permission.objects.get(codename="view_private_messages"))
    outsiders = [client_for(carol), client_for(dave), client_for(None), client_for(moderator)]
    highest = max(entry["id"] for entry in [*entries, gone]) + 2
    for client in outsiders:
        for pk in range(1, highest):
            for url in (f"/attachments/{pk}/", f"/attachments/{pk}/thumbnail/"):
                assert client.get(url).status_code == 404, (url, client)
                assert client.head(url).status_code == 404, (url, client)
    assert client_for(bob).get(entries[0]["url"]).status_code == 200
    assert client_for(bob).get(picture["url"]).status_code == 404  # not sent yet


@pytest.mark.parametrize("action", ["invite", "leave", "remove"])
def test_member_forms_are_404_for_non_members(secret, carol, action):
    response = client_for(carol).post(f"/rooms/{secret.slug}/{action}/", {"username": "bob"})
    assert response.status_code == 404
    assert Membership.objects.filter(room=secret).count() == 2


@pytest.mark.parametrize("action", ["accept", "decline"])
def test_answering_an_invitation_needs_one(secret, carol, action):
    response = client_for(carol).post(f"/rooms/{secret.slug}/{action}/")
    assert response.status_code == 404
    assert access.membership(carol, secret) is None


def test_creating_a_room_and_a_dm_through_the_forms(alice, bob):
    response = client_for(alice).post("/chat/private-rooms/new/", {"title": "Book club"})
    room = Room.objects.get(title="Book club")
    assert response.status_code == 302 and response["Location"] == f"/rooms/{room.slug}/"
    assert access.can_read(alice, room) and not access.can_read(bob, room)
    response = client_for(alice).post("/chat/direct/new/", {"usernames": "bob"})
    dm = Room.objects.get(kind=protocol.ROOM_DM)
    assert response["Location"] == f"/rooms/{dm.slug}/"
    refused_page = client_for(alice).post("/chat/direct/new/", {"usernames": "ghost"}, follow=True)
    assert "There is no user" in refused_page.content.decode()


def test_notify_settings_refuse_rooms_the_user_cannot_read(secret, room, carol):
    client = client_for(carol)
    page = client.get("/chat/notifications/").content.decode()
    assert f'name="level-{room.slug}"' in page and secret.slug not in page
    response = client.post(
        "/chat/notifications/",
        {f"level-{room.slug}": protocol.NOTIFY_ALL, f"level-{secret.slug}": protocol.NOTIFY_ALL},
        follow=True,
    )
    assert "You cannot choose for the room" in response.content.decode()
    # Refused as a whole: not even the public room's level changed.
    assert NotifySetting.objects.filter(user=carol).count() == 0
    assert refused(attention.set_level, carol, secret, protocol.NOTIFY_ALL) == protocol.NOT_MEMBER
    assert refused(attention.set_level, AnonymousUser(), room, "all") == protocol.LOGIN_REQUIRED


def test_invite_then_accept_through_the_forms(secret, alice, carol):
    client_for(alice).post(f"/rooms/{secret.slug}/invite/", {"username": "carol"})
    assert "Secret plans" in client_for(carol).get("/").content.decode()  # the invitation
    response = client_for(carol).post(f"/rooms/{secret.slug}/accept/")
    assert response["Location"] == f"/rooms/{secret.slug}/"
    assert client_for(carol).get(f"/rooms/{secret.slug}/").status_code == 200


def test_console_page_lists_only_readable_rooms_in_its_sidebar(secret, moderator):
    page = client_for(moderator).get("/console/").content.decode()
    assert "Secret plans" not in page


def test_admin_lists_private_messages_only_with_the_permission(secret, alice, moderator):
    services.post_message(alice, secret, "admin must not list this")
    moderator.user_permissions.add(*Permission.objects.filter(content_type__app_label="chat"))
    moderator = type(moderator).objects.get(pk=moderator.pk)
    reader = Permission.objects.get(codename="view_private_messages")
    moderator.user_permissions.remove(reader)
    listing = client_for(moderator).get("/admin/chat/message/").content.decode()
    assert "admin must not list this" not in listing
    moderator.user_permissions.add(reader)
    listing = client_for(moderator).get("/admin/chat/message/").content.decode()
    assert "admin must not list this" in listing


def test_search_page_leaves_out_rooms_the_user_cannot_read(secret, alice, carol):
    services.post_message(alice, secret, "findable only by members")
    page = client_for(carol).get("/search/", {"q": "findable"}).content.decode()
    assert "only by members" not in page
    response = client_for(carol).get("/search/", {"q": "findable", "room": secret.slug})
    assert response.status_code == 404
    page = client_for(alice).get("/search/", {"q": "findable"}).content.decode()
    assert "only by members" in page


def test_search_api_leaves_out_rooms_the_user_cannot_read(secret, alice, carol):
    services.post_message(alice, secret, "findable only by members")
    assert client_for(carol).get("/api/chat/search/", {"q": "findable"}).json()["results"] == []
    refused = client_for(carol).get("/api/chat/search/", {"q": "x", "room": secret.slug})
    assert refused.status_code == 404
    hits = client_for(alice).get("/api/chat/search/", {"q": "findable"}).json()["results"]
    assert [hit["room"] for hit in hits] == [secret.slug]


# --- sockets ----------------------------------------------------------------------------------


async def test_sockets_opened_together_each_get_their_own_answer_in_one_database_trip(
    channel_layer, secret, room, alice, bob, carol, monkeypatch
):
    """A reconnect burst reads its opening frames in one hop to the database thread
    (chat.consumers._openings); the refusal of one socket (a non-member of the private room)
    does not touch the others, and each socket gets its own room, marker and user."""
    from chat import consumers

    trips = batch_sizes(monkeypatch, consumers._openings, "run_all")
    await database_sync_to_async(services.post_message)(alice, secret, "for members")
    await database_sync_to_async(services.post_message)(carol, room, "for everyone")
    plan = [(secret, alice), (room, carol), (secret, carol), (secret, bob), (room, None)]
    sockets = await asyncio.gather(*(open_socket(f"/ws/chat/{r.slug}/", u) for r, u in plan))
    first = await asyncio.gather(*(socket.receive_json_from() for socket in sockets))
    assert sum(trips) == len(plan) and len(trips) < len(plan)
    assert [(f["type"], f.get("room"), f.get("user")) for f in first] == [
        ("history", secret.slug, "alice"),
        ("history", room.slug, "carol"),
        ("error", None, None),
        ("history", secret.slug, "bob"),
        ("history", room.slug, None),
    ]
    assert first[2]["code"] == protocol.NOT_MEMBER
    assert await closed_code(sockets[2]) == protocol.CLOSE_FORBIDDEN
    assert [m["text"] for m in first[0]["messages"]] == ["for members"]
    assert [m["text"] for m in first[1]["messages"]] == ["for everyone"]
    for socket in sockets[:2] + sockets[3:]:
        assert (await socket.receive_json_from())["type"] == protocol.PRESENCE
        await socket.disconnect()


async def test_non_member_socket_is_closed_4403_before_joining(channel_layer, secret, alice, carol):
    for user in (carol, None):
        socket = await open_socket(f"/ws/chat/{secret.slug}/", user)
        error = await socket.receive_json_from()
        assert error == {
            "type": "error",
            "code": protocol.NOT_MEMBER,
            "detail": "This room is private and you are not a member.",
        }
        assert await closed_code(socket) == protocol.CLOSE_FORBIDDEN
    assert await presence.users(secret.slug) == []
    member, _ = await join_room(secret.slug, alice)
    await member.send_json_to({"type": "message", "text": "just us", "client_id": "c-1"})
    assert (await next_of_type(member, protocol.MESSAGE))["text"] == "just us"
    await member.disconnect()


async def test_a_refused_socket_gets_nothing_the_room_says_meanwhile(
    channel_layer, secret, alice, carol
):
    """The membership check runs after the socket joined the room's group (in the same trip to
    the database as the history): a room event broadcast while the check runs never reaches the
    non-member."""
    event = await database_sync_to_async(services.post_message)(alice, secret, "members only")
    message = broadcast.room_event_message(event)
    socket = await open_socket(f"/ws/chat/{secret.slug}/", carol)
    await broadcast.broadcast_room_event(channel_layer, message)
    outputs = [await socket.receive_output(1)]
    while outputs[-1]["type"] != "websocket.close":
        outputs.append(await socket.receive_output(1))
    texts = [json.loads(o["text"]) for o in outputs if o["type"] == "websocket.send"]
    assert [(t["type"], t.get("code")) for t in texts] == [("error", protocol.NOT_MEMBER)]
    assert outputs[-1]["code"] == protocol.CLOSE_FORBIDDEN
    assert await socket.receive_nothing(0.3)


async def test_member_socket_reads_history_and_sees_member_events(
    channel_layer, secret, alice, bob, carol
):
    await database_sync_to_async(services.post_message)(alice, secret, "before you came")
    socket, history = await join_room(secret.slug, bob)
    assert [m["text"] for m in history["messages"]] == ["before you came"]
    event = await database_sync_to_async(membership.invite)(alice, secret, "carol")
    await broadcast.broadcast_room_event(channel_layer, broadcast.room_event_message(event))
    frame = await next_of_type(socket, protocol.MEMBER)
    assert (frame["user"], frame["action"], frame["by"]) == ("carol", "invited", "alice")
    await socket.disconnect()


async def test_reconnect_replays_membership_changes(channel_layer, secret, alice, bob, carol):
    first, history = await join_room(secret.slug, bob)
    seq = history["seq"]
    await first.disconnect()
    await database_sync_to_async(membership.invite)(alice, secret, "carol")
    socket = await open_socket(f"/ws/chat/{secret.slug}/?after=0&seq={seq}", bob)
    assert (await socket.receive_json_from())["type"] == protocol.HISTORY
    frame = await socket.receive_json_from()  # the replayed event, before presence
    assert (frame["user"], frame["action"], frame["seq"]) == ("carol", "invited", seq + 1)
    await socket.disconnect()


async def test_history_request_after_removal_is_refused(channel_layer, secret, alice, bob):
    socket, _ = await join_room(secret.slug, bob)
    await database_sync_to_async(membership.remove)(alice, secret, "bob")  # no broadcast
    await socket.send_json_to({"type": "history", "before": 10**6})
    error = await next_of_type(socket, protocol.ERROR)
    assert error["code"] == protocol.NOT_MEMBER
    await socket.send_json_to({"type": "message", "text": "still here?", "client_id": "c-2"})
    assert (await next_of_type(socket, protocol.ERROR))["code"] == protocol.NOT_MEMBER
    await socket.disconnect()


async def test_removed_member_socket_closes_4403_at_once(channel_layer, secret, alice, bob):
    """The owner removes bob through the page's form; bob's open socket closes in time and gets
    no later message."""
    socket, _ = await join_room(secret.slug, bob)
    watcher, _ = await join_room(secret.slug, alice)

    def remove_bob():
        return client_for(alice).post(f"/rooms/{secret.slug}/remove/", {"username": "bob"})

    response = await database_sync_to_async(remove_bob)()
    assert response.status_code == 302
    started = time.monotonic()
    assert await closed_code(socket, REMOVAL_DEADLINE_SECONDS) == protocol.CLOSE_FORBIDDEN
    assert time.monotonic() - started < REMOVAL_DEADLINE_SECONDS
    removed = await next_of_type(watcher, protocol.MEMBER)
    assert (removed["user"], removed["action"]) == ("bob", "removed")
    await watcher.disconnect()


async def test_leaving_closes_every_socket_of_the_leaver_on_that_room_only(
    channel_layer, secret, room, alice, bob
):
    tab_one, _ = await join_room(secret.slug, bob)
    tab_two, _ = await join_room(secret.slug, bob)
    public_tab, _ = await join_room(room.slug, bob)
    event = await database_sync_to_async(membership.leave)(bob, secret)
    await broadcast.broadcast_room_event(channel_layer, broadcast.room_event_message(event))
    for tab in (tab_one, tab_two):
        assert await closed_code(tab, REMOVAL_DEADLINE_SECONDS) == protocol.CLOSE_FORBIDDEN
    while not await public_tab.receive_nothing(0.3):  # presence updates, nothing else
        output = await public_tab.receive_output()
        assert output["type"] == "websocket.send" and '"presence"' in output["text"], output
    await public_tab.send_json_to({"type": "message", "text": "still in general", "client_id": "x"})
    assert (await next_of_type(public_tab, protocol.MESSAGE))["text"] == "still in general"
    await public_tab.disconnect()


async def test_presence_of_a_private_room_reaches_only_permitted_consoles(
    channel_layer, secret, alice, moderator
):
    console = await open_socket("/ws/chat/admin/", moderator)
    opening = await next_of_type(console, protocol.HISTORY)
    assert secret.slug not in opening["rooms"]
    assert opening["private_rooms"] == [
        {"room": secret.slug, "kind": protocol.ROOM_PRIVATE, "members": 2}
    ]
    member, _ = await join_room(secret.slug, alice)
    await member.send_json_to({"type": "message", "text": "console must not see", "client_id": "1"})
    await next_of_type(member, protocol.MESSAGE)
    await asyncio.sleep(0)  # let the layer hand out what it has
    seen = []
    while not await console.receive_nothing(0.4):
        seen.append(await console.receive_json_from())
    assert not [f for f in seen if f.get("room") == secret.slug], seen
    await member.disconnect()
    await console.disconnect()


async def test_console_with_permission_reads_private_rooms(channel_layer, secret, alice, moderator):
    def grant():
        moderator.user_permissions.add(Permission.objects.get(codename="view_private_messages"))
        services.post_message(alice, secret, "visible to the permitted")

    await database_sync_to_async(grant)()
    console = await open_socket("/ws/chat/admin/", moderator)
    opening = await next_of_type(console, protocol.HISTORY)
    assert secret.slug in opening["rooms"]
    assert "visible to the permitted" in [m["text"] for m in opening["messages"]]
    member, _ = await join_room(secret.slug, alice)
    await member.send_json_to({"type": "message", "text": "live too", "client_id": "2"})
    frame = await next_of_type(console, protocol.MESSAGE)
    assert (frame["room"], frame["text"]) == (secret.slug, "live too")
    await member.disconnect()
    await console.disconnect()


def test_console_feed_leaves_out_private_messages_without_the_permission(
    secret, room, alice, moderator
):
    services.post_message(alice, secret, "hidden")
    services.post_message(alice, room, "public")
    assert [m["text"] for m in services.recent_messages(moderator)] == ["public"]


# --- inventory --------------------------------------------------------------------------------

# Every URL pattern and socket route, with the test above that proves its membership check, or
# why it reads no room. A new path fails test_every_path_is_in_the_membership_registry until it
# is added here with its test.
MEMBERSHIP_TESTED = {
    "": "test_room_list_and_counts_api_hide_rooms_the_user_cannot_read",
    "rooms/<str:slug>/": "test_room_page_is_404_for_non_members_and_anonymous",
    "rooms/<str:slug>/invite/": "test_member_forms_are_404_for_non_members",
    "rooms/<str:slug>/accept/": "test_answering_an_invitation_needs_one",
    "rooms/<str:slug>/decline/": "test_answering_an_invitation_needs_one",
    "rooms/<str:slug>/leave/": "test_member_forms_are_404_for_non_members",
    "rooms/<str:slug>/remove/": "test_member_forms_are_404_for_non_members",
    "chat/private-rooms/new/": "test_creating_a_room_and_a_dm_through_the_forms",
    "chat/direct/new/": "test_creating_a_room_and_a_dm_through_the_forms",
    "console/": "test_console_page_lists_only_readable_rooms_in_its_sidebar",
    "api/chat/rooms/": "test_room_list_and_counts_api_hide_rooms_the_user_cannot_read",
    "rooms/<str:slug>/attachments/": "test_attachments_of_a_private_room_are_404_for_non_members",
    "attachments/<int:pk>/": "test_a_removed_member_loses_access_to_the_rooms_attachments",
    "attachments/<int:pk>/thumbnail/": "test_a_removed_member_loses_access_to_the_rooms_attachments",
    "api/chat/rooms/<str:slug>/members/": "test_members_api_is_404_for_non_members",
    "admin/": "test_admin_lists_private_messages_only_with_the_permission",
    "search/": "test_search_page_leaves_out_rooms_the_user_cannot_read",
    "chat/notifications/": "test_notify_settings_refuse_rooms_the_user_cannot_read",
    "api/chat/search/": "test_search_api_leaves_out_rooms_the_user_cannot_read",
    "ws/chat/admin/": "test_presence_of_a_private_room_reaches_only_permitted_consoles",
    "ws/chat/<room>/": "test_non_member_socket_is_closed_4403_before_joining",
    # Notifications carry mentions: only members are mentioned (the text goes nowhere else).
    "notifications/": "test_mentions_in_a_private_room_notify_members_only",
    "api/notifications/": "test_mentions_in_a_private_room_notify_members_only",
    "ws/notifications/": "test_mentions_in_a_private_room_notify_members_only",
    "notifications/poll/": "test_mentions_in_a_private_room_notify_members_only",
}
READS_NO_ROOM = {
    "accounts/": "allauth's log-in, sign-up and e-mail pages",
    "notifications/read/": "marks the user's own notifications read",
    "api/notifications/read/": "marks the user's own notifications read",
    "settings/tokens/": "the user's API tokens",
    "settings/tokens/<int:token_id>/revoke/": "the user's API tokens",
    "news/": "APRS news, no chat rooms",
    "news/follow/": "APRS news, no chat rooms",
    "news/unfollow/": "APRS news, no chat rooms",
    "ws/news/": "APRS news, no chat rooms",
    "healthz": "liveness, no data",
    "readyz": "readiness, no data",
    "metrics": "process counters, no room names",
}


def _url_patterns() -> set[str]:
    found = set()
    for entry in get_resolver().url_patterns:
        if isinstance(entry, URLResolver):
            prefix = str(entry.pattern)
            if prefix in ("admin/", "accounts/"):  # whole sites of their own, listed once
                found.add(prefix)
                continue
            for inner in entry.url_patterns:
                found.add(prefix + str(inner.pattern))
        else:
            found.add(str(entry.pattern))
    return found


def _socket_and_long_poll_routes() -> set[str]:
    import aprs_news.routing
    import chat.routing
    import notifications.routing

    routes = [
        *chat.routing.websocket_urlpatterns,
        *notifications.routing.websocket_urlpatterns,
        *aprs_news.routing.websocket_urlpatterns,
        *notifications.routing.http_urlpatterns,
    ]
    names = set()
    for route in routes:
        text = str(route.pattern).lstrip("^").rstrip("$")
        names.add(re.sub(r"\(\?P<(\w+)>[^)]*\)", r"<\1>", text))
    return names


def test_every_path_is_in_the_membership_registry():
    paths = _url_patterns() | _socket_and_long_poll_routes()
    unlisted = paths - set(MEMBERSHIP_TESTED) - set(READS_NO_ROOM)
    assert not unlisted, f"paths without a membership test in the registry: {sorted(unlisted)}"
    stale = (set(MEMBERSHIP_TESTED) | set(READS_NO_ROOM)) - paths
    assert not stale, f"registry entries for paths that no longer exist: {sorted(stale)}"
    for path, test_name in MEMBERSHIP_TESTED.items():
        assert callable(globals().get(test_name)), f"{path}: no test named {test_name}"
