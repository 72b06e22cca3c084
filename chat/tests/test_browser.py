"""The chat pages in real Chromium against a real Daphne: what two people see of each other."""

import pytest
from playwright.sync_api import expect

from chat.tests.conftest import BROWSER_TIMEOUT as TIMEOUT
from chat.tests.conftest import message, say

ROOM_PAGE = "/rooms/browser/"  # what open_page(user) opens


@pytest.fixture(scope="module")
def site(live_server):
    """The live server with a room and three people logged in (their session keys)."""
    live_server.shell(
        "from chat.models import Room\n"
        "Room.objects.get_or_create(slug='browser', title='Browser', topic='Tested in Chromium')"
    )
    keys = {
        "cara": live_server.create_user("cara"),
        "dave": live_server.create_user("dave"),
        "boss": live_server.create_user("boss", staff=True),
    }
    return live_server, keys


def test_two_people_chat_with_each_other(open_page):
    cara, dave = open_page("cara"), open_page("dave")
    say(cara, "hi dave, it's cara")
    expect(message(dave, "hi dave, it's cara")).to_be_visible()
    say(dave, "hello cara")
    expect(message(cara, "hello cara")).to_be_visible()
    expect(message(dave, "hello cara")).to_be_visible()


def test_presence_and_typing_indicator_show(open_page):
    cara, dave = open_page("cara"), open_page("dave")
    expect(cara.locator("[data-people]")).to_contain_text("dave")
    expect(dave.locator("[data-people]")).to_contain_text("dave (you)")
    expect(dave.locator("[data-people]")).to_contain_text("cara")
    dave.type("[data-composer-text]", "typing away")
    expect(cara.locator("[data-typing]")).to_have_text("dave is typing…")


def test_reload_keeps_history(open_page):
    cara = open_page("cara")
    say(cara, "remember me after a reload")
    expect(message(cara, "remember me after a reload")).to_be_visible()
    cara.reload()
    expect(message(cara, "remember me after a reload")).to_be_visible()


def test_script_message_renders_as_text(open_page):
    cara, dave = open_page("cara"), open_page("dave")
    dave.evaluate("window.__pwned = false")
    payload = "<script>window.__pwned = true</script><b>bold?</b>"
    say(cara, payload)
    expect(message(dave, payload)).to_have_text(payload)
    assert dave.locator(".message-text b").count() == 0
    assert dave.evaluate("window.__pwned") is False


def test_staff_deletes_a_message_and_it_disappears_for_others(open_page):
    cara, boss = open_page("cara"), open_page("boss")
    say(cara, "delete me please")
    text = boss.locator(".message-text", has_text="delete me please")
    target = boss.locator(".message", has=text)
    expect(target).to_be_visible()
    boss.once("dialog", lambda dialog: dialog.accept())
    target.hover()
    target.locator("button.action-delete").click()
    expect(message(cara, "delete me please")).to_have_count(0)


def test_mention_of_me_is_highlighted(open_page):
    cara, dave = open_page("cara"), open_page("dave")
    say(cara, "@dave have a look")
    highlighted = dave.locator(".message.mentions-me .mention", has_text="@dave")
    expect(highlighted).to_be_visible()


def test_staff_console_shows_live_feed_and_audit_of_a_delete(open_page):
    console = open_page("boss", "/console/")
    cara = open_page("cara")
    say(cara, "seen by the console")
    item = console.locator("[data-feed] .message", has_text="seen by the console")
    expect(item).to_be_visible()
    console.once("dialog", lambda dialog: dialog.accept())
    item.hover()
    item.locator("button.action-delete").click()
    expect(item).to_have_count(0)
    expect(console.locator("[data-audit]")).to_contain_text("seen by the console")
    expect(message(cara, "seen by the console")).to_have_count(0)


CONVERSATION = [
    ("bob", "general", "Deploy of the new socket layer is done, everything green on staging."),
    ("carol", "general", "Nice! Reconnects feel instant now."),
    ("carol", "general", "Pulled the plug on my Wi-Fi twice and nothing got lost."),
    ("dave", "general", "Does the console show the new rate numbers yet?"),
    ("bob", "general", "@alice can you take a look at the release notes before lunch?"),
    ("dave", "general", "Also: <b>tags</b> stay text, as they should."),
]


def test_room_and_console_pages_render_for_the_readme(live_server_factory, browser, tmp_path):
    """Renders the room page and the console with a small conversation and saves screenshots
    (to SWITCHBOARD_SCREENSHOT_DIR, e.g. docs/images/, when set): the pages show history, the "new
    messages" divider, mentions, presence, typing, the console feed and audit log."""
    import os
    from pathlib import Path

    out = Path(os.environ.get("SWITCHBOARD_SCREENSHOT_DIR") or tmp_path)
    server = live_server_factory(SWITCHBOARD_APRS_REPLAY="")
    server.manage("seed_demo")
    server.start_daphne()
    keys = {name: server.create_user(name) for name in ("alice", "bob", "carol", "dave")}
    keys["admin"] = server.create_user("admin", staff=True)
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Room\n"
        "from chat import services\n"
        "users = {u.username: u for u in get_user_model().objects.all()}\n"
        "general = Room.objects.get(slug='general')\n"
        "last = general.messages.order_by('-id').first()\n"
        "services.mark_read(users['alice'], general, last.id)\n"
        f"for name, slug, text in {CONVERSATION!r}:\n"
        "    services.post_message(users[name], Room.objects.get(slug=slug), text)\n"
        "spam = services.post_message(users['dave'], Room.objects.get(slug='random'), 'BUY NOW')\n"
        "services.delete_message(users['admin'], spam.frame['id'])\n"
        "services.mute_user(users['admin'], 'dave', 'random', 15)\n"
    )

    def page_for(user: str, path: str, **options):
        context = browser.new_context(**options)
        context.add_cookies([{"name": "sessionid", "value": keys[user], "url": server.url}])
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(server.url + path)
        expect(page.locator("[data-connection-state]")).to_have_attribute("data-state", "open")
        return page

    others = [page_for(name, "/rooms/general/") for name in ("bob", "carol")]
    alice = page_for("alice", "/rooms/general/", viewport={"width": 1280, "height": 820})
    expect(alice.locator(".new-divider")).to_be_visible()
    expect(alice.locator(".message.mentions-me").last).to_be_visible()
    expect(alice.locator("[data-people] li")).to_have_count(3)
    others[1].type("[data-composer-text]", "Sure, one sec")
    expect(alice.locator("[data-typing]")).to_have_text("carol is typing…")
    alice.fill("[data-composer-text]", "On it, @bob")
    alice.screenshot(path=str(out / "chat-room.png"))

    console = page_for("admin", "/console/", viewport={"width": 1280, "height": 900})
    expect(console.locator("[data-audit] li")).to_have_count(2)
    say(others[0], "Console folks: the feed updates live.")
    expect(console.locator("[data-feed]")).to_contain_text("the feed updates live")
    console.screenshot(path=str(out / "chat-console.png"))
    phone = page_for("bob", "/rooms/general/", viewport={"width": 390, "height": 780})
    phone.screenshot(path=str(out / "chat-room-phone.png"))
    for page in [*others, alice, console, phone]:
        page.context.close()
    server.stop()
    assert (out / "chat-room.png").stat().st_size > 10_000


def test_page_reconnects_after_server_restart_and_loses_nothing(live_server_factory, browser):
    """Daphne goes away and comes back on the same port: the page shows it is reconnecting, then
    shows what was said meanwhile, and what was typed meanwhile is sent exactly once."""
    import subprocess
    import sys

    from tests.servers import ROOT, wait_for_port

    server = live_server_factory(SWITCHBOARD_APRS_REPLAY="")
    server.shell("from chat.models import Room\nRoom.objects.create(slug='restart')")
    key = server.create_user("erin")
    server.create_user("fred")
    port = server.start_daphne()
    context = browser.new_context()
    context.add_cookies([{"name": "sessionid", "value": key, "url": server.url}])
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{server.url}/rooms/restart/")
    state = page.locator("[data-connection-state]")
    expect(state).to_have_attribute("data-state", "open")

    server.stop()
    expect(state).to_have_attribute("data-state", "reconnecting")
    say(page, "typed while the server was down")
    expect(page.locator(".message.is-pending")).to_have_count(1)
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Room\nfrom chat.services import post_message\n"
        "post_message(get_user_model().objects.get(username='fred'), "
        "Room.objects.get(slug='restart'), 'said while you were away')"
    )
    log = open(server.directory / "daphne-restarted.log", "w")  # noqa: SIM115
    process = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT, env=server.env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    server.processes.append(process)
    wait_for_port(port, timeout=30, process=process)

    back_online = 30_000  # the back-off may be waiting several seconds when the server returns
    expect(message(page, "said while you were away")).to_be_visible(timeout=back_online)
    expect(message(page, "typed while the server was down")).to_have_count(1, timeout=back_online)
    expect(page.locator(".message.is-pending")).to_have_count(0)
    expect(state).to_have_attribute("data-state", "open")
    page.reload()
    expect(message(page, "typed while the server was down")).to_have_count(1)
    context.close()
    server.stop()


def test_times_show_in_the_readers_time_zone(site, browser):
    server, keys = site
    server.shell(
        "from datetime import datetime, UTC\n"
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Message, Room\nfrom chat.services import post_message\n"
        "event = post_message(get_user_model().objects.get(username='dave'), "
        "Room.objects.get(slug='browser'), 'posted at noon UTC')\n"
        "Message.objects.filter(pk=event.frame['id'])"
        ".update(created=datetime(2026, 1, 5, 12, 0, tzinfo=UTC))"
    )
    context = browser.new_context(timezone_id="Asia/Kolkata", locale="en-US")  # UTC+05:30
    context.add_cookies([{"name": "sessionid", "value": keys["cara"], "url": server.url}])
    page = context.new_page()
    page.goto(f"{server.url}/rooms/browser/")
    item = page.locator(".message", has=page.locator(".message-text", has_text="posted at noon"))
    expect(item.locator("time")).to_have_text("05:30 PM", timeout=TIMEOUT)
    context.close()


def test_keyboard_shift_enter_adds_a_line_and_arrow_up_edits_the_last_message(open_page):
    cara, dave = open_page("cara"), open_page("dave")
    box = "[data-composer-text]"
    cara.click(box)
    cara.keyboard.type("first line")
    cara.keyboard.press("Shift+Enter")
    cara.keyboard.type("second line")
    cara.keyboard.press("Enter")
    expect(message(dave, "first line")).to_have_text("first line\nsecond line")
    cara.keyboard.press("ArrowUp")
    expect(cara.locator(box)).to_have_value("first line\nsecond line")
    cara.keyboard.press("Control+A")
    cara.keyboard.type("edited with the keyboard")
    cara.keyboard.press("Enter")
    text = dave.locator(".message-text", has_text="edited with the keyboard")
    edited = dave.locator(".message", has=text)
    expect(edited.locator(".message-edited")).to_be_visible()


def test_scrolling_to_the_top_loads_older_messages(site, open_page):
    server, _ = site
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Room\nfrom chat.services import post_message\n"
        "room, _ = Room.objects.get_or_create(slug='long')\n"
        "dave = get_user_model().objects.get(username='dave')\n"
        "for n in range(70):\n"
        "    post_message(dave, room, f'numbered {n}')\n"
    )
    cara = open_page("cara", "/rooms/long/")
    expect(message(cara, "numbered 69")).to_be_visible()
    expect(message(cara, "numbered 19")).to_have_count(0)
    cara.locator("[data-scroller]").evaluate("element => { element.scrollTop = 0; }")
    expect(message(cara, "numbered 0")).to_have_count(1)
    expect(cara.locator("[data-history-start]")).to_be_visible()


def test_room_list_updates_online_and_unread_counts(site, open_page, browser):
    server, keys = site
    # A room of its own: the earlier tests' pages may still be leaving the shared one.
    server.shell("from chat.models import Room\nRoom.objects.create(slug='listing')")
    context = browser.new_context()
    context.add_cookies([{"name": "sessionid", "value": keys["cara"], "url": server.url}])
    listing = context.new_page()
    listing.goto(server.url + "/")
    card = listing.locator('[data-room="listing"]')
    expect(card.locator("[data-online]")).to_contain_text("0 online")
    dave = open_page("dave", "/rooms/listing/")
    say(dave, "a new message for the list")
    expect(message(dave, "a new message for the list")).to_be_visible()
    listing.evaluate("document.dispatchEvent(new Event('visibilitychange'))")  # poll now
    expect(card.locator("[data-online]")).to_contain_text("1 online", timeout=TIMEOUT)
    expect(card.locator("[data-unread]")).to_be_visible(timeout=TIMEOUT)
    context.close()


def test_new_messages_divider_marks_unread_and_new_messages_go_below_it(site, open_page):
    server, _ = site
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Room\nfrom chat.services import post_message\n"
        "room = Room.objects.create(slug='divider')\n"
        "post_message(get_user_model().objects.get(username='dave'), room, 'unread by cara')\n"
    )
    cara = open_page("cara", "/rooms/divider/")
    items = cara.locator("[data-messages] > li")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_have_class("new-divider")
    expect(items.nth(1)).to_contain_text("unread by cara")
    say(cara, "my reply goes last")
    expect(items).to_have_count(3)
    expect(items.nth(2)).to_contain_text("my reply goes last")
    expect(items.nth(2)).not_to_have_class("message is-pending")
