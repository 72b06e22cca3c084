"""The chat pages rendered by Django: room list with unread and online counts, room, console."""

import pytest
from asgiref.sync import async_to_sync
from django.test import Client

from chat.models import Room
from chat.presence import presence
from chat.services import mark_read, post_message

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_room_list_shows_unread_count_of_messages_by_others(room, alice, bob):
    first = post_message(bob, room, "one")
    post_message(bob, room, "two")
    post_message(alice, room, "my own does not count")
    mark_read(alice, room, first.frame["id"])
    page = logged_in(alice).get("/")
    assert page.status_code == 200
    [listed] = [r for r in page.context["rooms"] if r.slug == "general"]
    assert listed.unread == 1
    assert b'title="1 unread"' in page.content


def test_room_list_counts_deleted_messages_as_read(room, alice, bob):
    from chat.services import delete_message

    event = post_message(bob, room, "gone")
    delete_message(bob, event.frame["id"], room)
    page = logged_in(alice).get("/")
    assert [r.unread for r in page.context["rooms"]] == [0]


def test_room_list_shows_people_online(room, alice):
    async_to_sync(presence.join)("general", "conn-1", "alice")
    page = Client().get("/")
    assert [r.online for r in page.context["rooms"]] == [1]
    assert b"1 online" in page.content


def test_room_page_renders_for_anonymous_with_login_prompt(room):
    page = Client().get("/rooms/general/")
    assert page.status_code == 200
    assert b'data-room="general"' in page.content
    assert b"to join the conversation" in page.content


def test_unknown_room_page_is_404(transactional_db):
    assert Client().get("/rooms/nowhere/").status_code == 404


def test_console_sends_anonymous_visitors_to_the_sites_login(transactional_db):
    response = Client().get("/console/")
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=/console/"


def test_console_tells_a_logged_in_non_staff_user_it_is_for_staff(alice):
    response = logged_in(alice).get("/console/")
    assert response.status_code == 403
    assert "chat/console_forbidden.html" in [t.name for t in response.templates]
    assert b"The moderation console is for staff" in response.content
    assert b"/static/css/app.css" in response.content  # the site's page, not Django admin's
    assert b"alice" in response.content


def test_console_renders_for_staff(moderator, room):
    page = logged_in(moderator).get("/console/")
    assert page.status_code == 200
    assert b"Moderation console" in page.content


def test_navigation_shows_console_only_to_staff(moderator, alice, room):
    assert b'href="/console/"' in logged_in(moderator).get("/").content
    assert b'href="/console/"' not in logged_in(alice).get("/").content


def test_login_page_uses_the_site_layout(transactional_db):
    page = Client().get("/accounts/login/")
    assert page.status_code == 200
    assert b'class="site-header"' in page.content
    assert b"auth-card" in page.content


def test_reserved_room_slug_is_rejected_by_validation(transactional_db):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        Room(slug="admin").full_clean()
    with pytest.raises(ValidationError):
        Room(slug="has space").full_clean()
    Room(slug="ok_room-1").full_clean()


def test_room_counts_api_gives_online_and_unread_per_room(room, alice, bob):
    post_message(bob, room, "for alice")
    async_to_sync(presence.join)("general", "conn-1", "bob")
    response = logged_in(alice).get("/api/chat/rooms/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {
        "rooms": {
            "general": {
                "online": 1,
                "unread": 1,
                "kind": "public",
                "name": "General",
                "notify": "mentions",
            }
        }
    }
