"""Private rooms and direct messages in real Chromium against a real Daphne, two people side by
side: create a room, invite, accept, chat; open a DM; a removed member's page stops."""

import re
from urllib.parse import urlparse

import pytest
from playwright.sync_api import expect

from chat.tests.conftest import message, say


@pytest.fixture(scope="module")
def site(live_server):
    keys = {name: live_server.create_user(name) for name in ("erin", "fred", "gina")}
    keys["hal"] = live_server.create_user("hal", staff=True)
    # Staff but not a superuser (a superuser has every permission, chat.view_private_messages too).
    live_server.shell(
        "from django.contrib.auth import get_user_model\n"
        "get_user_model().objects.filter(username='hal').update(is_superuser=False)"
    )
    return live_server, keys


def live(page) -> None:
    expect(page.locator("[data-connection-state]")).to_have_attribute("data-state", "open")


def create_room(page, title: str) -> str:
    """Create a private room from the room list; returns its path."""
    page.fill("#private-title-input", title)
    page.click("[data-new-private-room] button[type=submit]")
    expect(page).to_have_url(re.compile(r"/rooms/p-[0-9a-f]{12}/$"))
    live(page)
    return urlparse(page.url).path


def test_private_room_invite_accept_and_chat(open_page):
    erin = open_page("erin")
    path = create_room(erin, "Launch team")
    expect(erin.locator("h1")).to_have_text("🔒 Launch team")

    # Not invited yet: as if the room did not exist (a 404: Django's DEBUG page, inline styles).
    fred = open_page("fred", path, check_csp=False)
    expect(fred.locator("#chat-app")).to_have_count(0)
    assert "Launch team" not in fred.content()

    erin.fill("#invite-username", "fred")
    erin.click("[data-invite] button[type=submit]")
    live(erin)
    expect(erin.locator('[data-member="fred"]')).to_have_attribute("data-state", "invited")

    fred.goto(fred.url.replace(path, "/"))
    invitation = fred.locator("[data-invitation]")
    expect(invitation).to_contain_text("erin invited you to")
    expect(invitation).to_contain_text("Launch team")
    invitation.locator("[data-accept]").click()
    live(fred)
    expect(fred.locator("h1")).to_have_text("🔒 Launch team")

    # erin's open page learns it live, from the member event.
    expect(erin.locator('[data-member="fred"]')).to_have_attribute("data-state", "joined")
    expect(erin.locator("[data-member-count]")).to_have_text("2")

    say(erin, "welcome to the launch team")
    expect(message(fred, "welcome to the launch team")).to_be_visible()
    say(fred, "glad to be here")
    expect(message(erin, "glad to be here")).to_be_visible()

    gina = open_page("gina")  # a third person sees nothing of it
    expect(gina.locator("[data-private-rooms]")).not_to_contain_text("Launch team")


def test_direct_message_between_two_people(open_page):
    erin = open_page("erin")
    erin.fill("#dm-usernames-input", "gina")
    erin.click("[data-new-dm] button[type=submit]")
    expect(erin).to_have_url(re.compile(r"/rooms/dm-[0-9a-f]{12}/$"))
    live(erin)
    expect(erin.locator("h1")).to_have_text("✉ erin, gina")

    gina = open_page("gina")
    gina.locator("[data-private-rooms] a", has_text="erin, gina").click()
    live(gina)
    say(gina, "hi erin, just us two")
    expect(message(erin, "hi erin, just us two")).to_be_visible()
    say(erin, "hi gina")
    expect(message(gina, "hi gina")).to_be_visible()

    # Opening a DM with the same person again finds the same conversation.
    again = open_page("gina")
    again.fill("#dm-usernames-input", "erin")
    again.click("[data-new-dm] button[type=submit]")
    live(again)
    expect(again).to_have_url(erin.url)
    expect(message(again, "hi gina")).to_be_visible()


def test_removed_member_page_stops_at_once(open_page):
    erin = open_page("erin")
    path = create_room(erin, "Short stay")
    erin.fill("#invite-username", "gina")
    erin.click("[data-invite] button[type=submit]")
    live(erin)
    gina = open_page("gina", path)
    gina.locator("[data-accept]").click()
    live(gina)
    say(gina, "hello")
    expect(message(erin, "hello")).to_be_visible()

    erin.locator('[data-remove="gina"]').click()
    live(erin)
    state = gina.locator("[data-connection-state]")
    expect(state).to_have_attribute("data-state", "closed")
    expect(state).to_have_text("Not a member")
    expect(gina.locator("[data-toast]")).to_contain_text("no longer a member")
    expect(gina.locator("[data-composer-text]")).to_be_disabled()
    expect(erin.locator('[data-member="gina"]')).to_have_count(0)


def test_console_shows_a_private_room_exists_but_not_its_messages(open_page):
    erin = open_page("erin")
    path = create_room(erin, "Staff cannot read")
    slug = path.strip("/").split("/")[-1]
    say(erin, "a private word")
    expect(message(erin, "a private word")).to_be_visible()
    hal = open_page("hal", "/console/")
    expect(hal.locator("[data-connection-state]")).to_have_attribute("data-state", "open")
    entry = hal.locator(f'[data-private-room="{slug}"]')
    expect(entry).to_contain_text("1 member")
    say(erin, "another private word")
    expect(message(erin, "another private word")).to_be_visible()
    expect(hal.locator("[data-feed]")).not_to_contain_text("private word")


CONVERSATION = (
    "from django.contrib.auth import get_user_model\n"
    "from chat import membership, services\n"
    "users = {{u.username: u for u in get_user_model().objects.all()}}\n"
    "room, _ = membership.create_private_room(users['erin'], 'Release crew', 'Friday launch')\n"
    "for name in ('fred', 'gina'):\n"
    "    membership.invite(users['erin'], room, name)\n"
    "    membership.accept(users[name], room)\n"
    "ask = services.post_message(users['erin'], room, 'Is **v2.4** ready to ship on Friday?')\n"
    "services.post_message(users['fred'], room, 'Tests are green: https://example.com/ci/2041', "
    "reply_to=ask.frame['id'])\n"
    "services.react(users['gina'], room, ask.frame['id'], '👍')\n"
    "services.react(users['fred'], room, ask.frame['id'], '👍')\n"
    "services.react(users['fred'], room, ask.frame['id'], '🎉')\n"
    "services.post_message(users['gina'], room, '> ready to ship\\nOne thing: run `migrate` first\\n"
    "```\\n./manage.py migrate\\n```')\n"
    "print(room.slug)\n"
)


def test_private_room_and_search_pages_render_for_the_docs(open_page, site, tmp_path):
    """Screenshots of a private room (members, a reply, reactions, formatting) and of search
    results, saved to SWITCHBOARD_SCREENSHOT_DIR (e.g. docs/images/) when set."""
    import os
    from pathlib import Path

    server, _ = site
    out = Path(os.environ.get("SWITCHBOARD_SCREENSHOT_DIR") or tmp_path)
    slug = server.shell(CONVERSATION.format()).strip().splitlines()[-1]
    erin = open_page("erin", f"/rooms/{slug}/")
    live(erin)
    erin.set_viewport_size({"width": 1280, "height": 720})
    expect(erin.locator(".reaction")).to_have_count(2)
    expect(erin.locator(".message-quote")).to_contain_text("ready to ship on Friday")
    expect(erin.locator("[data-member-count]")).to_have_text("3")
    erin.screenshot(path=str(out / "chat-private-room.png"))
    search = open_page("fred", "/search/?q=ship")
    search.set_viewport_size({"width": 1024, "height": 560})
    expect(search.locator(".search-hit mark").first).to_be_visible()
    search.screenshot(path=str(out / "chat-search.png"))
    assert (out / "chat-private-room.png").stat().st_size > 10_000
