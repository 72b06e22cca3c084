"""Replies and reactions in real Chromium against a real Daphne, two people side by side."""

import pytest
from playwright.sync_api import expect

from chat.tests.conftest import message_item, say

ROOM_PAGE = "/rooms/replies/"  # what open_page(user) opens

THUMBS = "👍"


@pytest.fixture(scope="module")
def site(live_server):
    live_server.shell(
        "from chat.models import Room\nRoom.objects.get_or_create(slug='replies', title='Replies')"
    )
    # The reactions test has users of its own: the reply test's 30 fillers use up hana's chat rate
    # limit (per user and room) for a few seconds.
    keys = {name: live_server.create_user(name) for name in ("hana", "ivan", "jo", "kim")}
    return live_server, keys


def test_reply_quotes_the_original_and_jumps_to_it(open_page):
    hana, ivan = open_page("hana"), open_page("ivan")
    say(hana, "who brings the cake?")
    original = message_item(ivan, "who brings the cake?")
    original.hover()
    original.locator(".action-reply").click()
    expect(ivan.locator("[data-replying]")).to_contain_text("Replying to hana")
    say(ivan, "I will")
    reply = message_item(hana, "I will")
    expect(reply.locator(".message-quote")).to_contain_text("who brings the cake?")
    expect(ivan.locator("[data-replying]")).to_have_count(0)  # the reply mode ends on send

    for index in range(30):  # push the original up out of view
        say(hana, f"filler {index}")
    expect(message_item(hana, "filler 29")).to_be_visible()
    expect(message_item(hana, "who brings the cake?")).not_to_be_in_viewport()
    reply.locator(".message-quote").click()
    expect(message_item(hana, "who brings the cake?")).to_be_in_viewport()


def test_reply_to_a_message_beyond_the_loaded_pages_loads_them(open_page, site):
    server, _ = site
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Room\nfrom chat.services import post_message\n"
        "room = Room.objects.get(slug='replies')\nhana = get_user_model().objects.get(username='hana')\n"
        "first = post_message(hana, room, 'the very old question')\n"
        "for i in range(120): post_message(hana, room, f'noise {i}')\n"
        "post_message(hana, room, 'an answer', reply_to=first.frame['id'])"
    )
    ivan = open_page("ivan")
    answer = message_item(ivan, "an answer")
    expect(answer.locator(".message-quote")).to_contain_text("the very old question")
    expect(message_item(ivan, "the very old question")).to_have_count(0)  # not loaded yet
    answer.locator(".message-quote").click()
    expect(message_item(ivan, "the very old question")).to_be_in_viewport()


def test_reactions_show_counts_and_who_live_for_both(open_page):
    jo, kim = open_page("jo"), open_page("kim")
    say(jo, "react to me")
    target = message_item(kim, "react to me")
    target.hover()
    target.locator(".action-react").click()
    kim.locator(f'.reaction-picker [data-pick="{THUMBS}"]').click()

    jos = message_item(jo, "react to me").locator(f'.reaction[data-emoji="{THUMBS}"]')
    expect(jos).to_contain_text("1")
    expect(jos).to_have_attribute("title", "kim")
    expect(jos).to_have_attribute("aria-pressed", "false")
    jos.click()  # jo adds hers by clicking the count
    expect(jos).to_contain_text("2")
    expect(jos).to_have_attribute("title", "kim, jo")
    kims = target.locator(f'.reaction[data-emoji="{THUMBS}"]')
    expect(kims).to_contain_text("2")
    expect(kims).to_have_attribute("aria-pressed", "true")
    kims.click()  # and kim takes his back
    expect(jos).to_contain_text("1")
    expect(jos).to_have_attribute("title", "jo")

    kim.reload()  # what is saved comes back with the history
    expect(kim.locator("[data-connection-state]")).to_have_attribute("data-state", "open")
    expect(
        message_item(kim, "react to me").locator(f'.reaction[data-emoji="{THUMBS}"]')
    ).to_have_attribute("title", "jo")
