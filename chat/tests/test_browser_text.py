"""Message text in real Chromium: the Markdown subset, links (http/https only) and @ autocomplete,
two people side by side."""

import pytest
from playwright.sync_api import expect

from chat.tests.conftest import message, say

ROOM_PAGE = "/rooms/text/"  # what open_page(user) opens


@pytest.fixture(scope="module")
def site(live_server):
    live_server.shell(
        "from chat.models import Room\nRoom.objects.get_or_create(slug='text', title='Text')"
    )
    keys = {name: live_server.create_user(name) for name in ("jack", "kate", "katherine")}
    return live_server, keys


def test_markdown_subset_and_links_render_as_elements_never_html(open_page):
    jack, kate = open_page("jack"), open_page("kate")
    kate.evaluate("window.__pwned = false")
    say(
        jack,
        "**bold** and *italic* and _also_ and `a<b>` in snake_case_name\n"
        "> quoted <img src=x onerror='window.__pwned=true'>\n"
        "```\nif (a < b) { **not bold** }\n```\n"
        "see https://example.com/path_(x). or javascript:alert(1) or http://localhost/a?b=1",
    )
    shown = message(kate, "snake_case_name")
    expect(shown.locator("strong")).to_have_text("bold")
    expect(shown.locator("em")).to_have_text(["italic", "also"])
    expect(shown.locator("code.md-code")).to_have_text("a<b>")
    expect(shown.locator("blockquote")).to_have_text(
        "quoted <img src=x onerror='window.__pwned=true'>"
    )
    expect(shown.locator("pre code")).to_have_text("if (a < b) { **not bold** }")
    links = shown.locator("a")
    expect(links).to_have_count(2)
    expect(links.nth(0)).to_have_attribute("href", "https://example.com/path_(x)")
    expect(links.nth(1)).to_have_attribute("href", "http://localhost/a?b=1")
    for index in range(2):
        expect(links.nth(index)).to_have_attribute("rel", "noopener noreferrer")
        expect(links.nth(index)).to_have_attribute("target", "_blank")
    expect(shown).to_contain_text("javascript:alert(1)")
    assert shown.locator("img").count() == 0
    assert kate.evaluate("window.__pwned") is False


def test_at_autocomplete_offers_the_rooms_people(open_page):
    jack = open_page("jack")
    kate = open_page("kate")
    expect(jack.locator("[data-people]")).to_contain_text("kate")
    katherine = open_page("katherine")
    say(katherine, "hello from katherine")
    expect(message(jack, "hello from katherine")).to_be_visible()

    jack.locator("[data-composer-text]").press_sequentially("thanks @ka")
    menu = jack.locator(".mention-menu")
    expect(menu).to_be_visible()
    expect(menu.locator("li")).to_have_text(["kate", "katherine"])
    jack.press("[data-composer-text]", "ArrowDown")
    jack.press("[data-composer-text]", "Enter")  # takes the name, does not send
    expect(jack.locator("[data-composer-text]")).to_have_value("thanks @katherine ")
    expect(menu).to_be_hidden()
    jack.locator("[data-composer-text]").press_sequentially("and @KA")
    expect(menu.locator("li").first).to_have_text("kate")
    jack.press("[data-composer-text]", "Tab")
    jack.press("[data-composer-text]", "Enter")  # the menu is closed: this sends
    sent = message(kate, "thanks @katherine and @kate")
    expect(sent.locator(".mention")).to_have_text(["@katherine", "@kate"])
    expect(kate.locator(".message.mentions-me", has_text="thanks")).to_have_count(1)


def test_search_marks_matches_and_jumps_to_an_old_message(open_page, site):
    server, _ = site
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Room\nfrom chat.services import post_message\n"
        "room = Room.objects.get(slug='text')\nkate = get_user_model().objects.get(username='kate')\n"
        "post_message(kate, room, 'the zeppelin arrives at dawn')\n"
        "for i in range(120): post_message(kate, room, f'chatter {i}')\n"
    )
    jack = open_page("jack")
    expect(jack.locator(".message-text", has_text="zeppelin")).to_have_count(0)  # not loaded
    jack.fill("#room-search", "zepp")
    jack.press("#room-search", "Enter")
    hit = jack.locator("[data-search-results] .search-hit")
    expect(hit).to_have_count(1)
    expect(hit.locator("mark")).to_have_text("zeppelin")
    hit.locator("[data-jump]").click()
    expect(jack.locator("[data-connection-state]")).to_have_attribute("data-state", "open")
    found = jack.locator(".message-text", has_text="the zeppelin arrives at dawn")
    expect(found).to_be_in_viewport()
