"""What a new user hit in the chat pages (issue 16), in real Chromium against a real Daphne: a page
whose login is gone, the "new messages" divider, edits in a run, the reconnect countdown, the room
list after leaving, refused messages, and the console's confirmations.

Sockets are "cut" with Playwright's WebSocket routing (`SocketSwitch`): the page's connections go
through a route that can drop them and refuse new ones, like a server that went away, while the
server itself keeps running for the other pages.
"""

import re

import pytest
from playwright.sync_api import expect

from chat.tests import test_browser
from chat.tests.conftest import BROWSER_TIMEOUT as TIMEOUT
from chat.tests.conftest import message, say

# The room page tests' live server with a room and people logged in (open_page: chat/tests/conftest.py).
site = test_browser.site


class SocketSwitch:
    """Routes a page's WebSockets matching `pattern` through Playwright; `down()` drops the open
    ones and refuses new ones until `up()`."""

    def __init__(self, page, pattern: str) -> None:
        self.is_down = False
        self.routes: list = []
        page.route_web_socket(re.compile(pattern), self._route)

    def _route(self, ws) -> None:
        if self.is_down:
            ws.close()
            return
        server = ws.connect_to_server()
        self.routes.append((ws, server))

    def down(self) -> None:
        self.is_down = True
        routes, self.routes = self.routes, []
        for ws, server in routes:
            server.close()
            ws.close()

    def up(self, page) -> None:
        self.is_down = False
        page.evaluate("window.dispatchEvent(new Event('online'))")  # reconnect now, no back-off


@pytest.fixture
def open_routed(site, browser):
    """open_routed(user, path, pattern) -> (page, switch): a logged-in page whose sockets matching
    `pattern` go through a SocketSwitch; also records every state of the connection badge."""
    server, keys = site
    contexts = []

    def open_(user: str, path: str, pattern: str = r"/ws/", staff: bool = False):
        if user not in keys:
            keys[user] = server.create_user(user, staff=staff)
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": keys[user], "url": server.url}])
        context.add_init_script(
            "window.__states = [];"
            "document.addEventListener('DOMContentLoaded', () => {"
            "  const badge = document.querySelector('[data-connection-state]');"
            "  if (!badge) return;"
            "  new MutationObserver(() => window.__states.push(badge.dataset.state))"
            "    .observe(badge, {attributes: true, attributeFilter: ['data-state']});"
            "});"
        )
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        switch = SocketSwitch(page, pattern)
        page.goto(server.url + path)
        expect(page.locator("[data-connection-state]")).to_have_attribute("data-state", "open")
        return page, switch

    yield open_
    for context in contexts:
        context.close()


def room(server, slug: str) -> None:
    server.shell(f"from chat.models import Room\nRoom.objects.get_or_create(slug={slug!r})")


def test_a_page_whose_login_is_gone_says_so_and_keeps_what_was_typed(site, open_routed):
    """The server forgot the session while the page was away (a restart that logged everyone
    out): on reconnect the room socket is anonymous. The page says so at once, never "Live", keeps
    the unsent message, the bell shows it is signed out, and after logging in again the message
    is sent, once."""
    server, keys = site
    room(server, "relogin")
    page, switch = open_routed("ivy", "/rooms/relogin/")
    state = page.locator("[data-connection-state]")
    expect(page.locator("[data-notification-bell]")).to_have_attribute("data-transport", "socket")

    server.shell(
        "from django.contrib.sessions.models import Session\n"
        f"Session.objects.filter(session_key={keys['ivy']!r}).delete()"
    )
    switch.down()
    expect(state).to_have_attribute("data-state", "reconnecting")
    say(page, "typed while the login went away")
    expect(page.locator(".message.is-pending")).to_have_count(1)
    page.evaluate("window.__states = []")
    switch.up(page)

    expect(state).to_have_attribute("data-state", "signed-out")
    expect(state).to_have_text("Signed out")
    banner = page.locator("[data-signed-out]")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("1 unsent message waits for you here")
    expect(page.locator(".message.is-pending")).to_have_count(1)
    expect(page.locator("[data-notification-bell]")).to_have_class(re.compile("is-signed-out"))
    expect(page.locator("[data-notification-bell]")).to_have_attribute("data-transport", "stopped")
    assert "open" not in page.evaluate("window.__states")

    # Log in again (a new session cookie) and come back: the message is sent, exactly once.
    keys["ivy"] = server.create_user("ivy")
    page.context.add_cookies([{"name": "sessionid", "value": keys["ivy"], "url": server.url}])
    login = banner.locator("a[data-login]")
    assert login.get_attribute("href").endswith("?next=%2Frooms%2Frelogin%2F")
    page.reload()
    expect(state).to_have_attribute("data-state", "open")
    expect(message(page, "typed while the login went away")).to_have_count(1)
    expect(page.locator(".message.is-pending")).to_have_count(0)
    page.reload()
    expect(message(page, "typed while the login went away")).to_have_count(1)


def test_the_first_message_after_the_new_messages_divider_shows_its_author(site, open_page):
    server, _ = site
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Room\nfrom chat.services import mark_read, post_message\n"
        "users = {u.username: u for u in get_user_model().objects.all()}\n"
        "room = Room.objects.create(slug='divider-run')\n"
        "first = post_message(users['dave'], room, 'read already')\n"
        "post_message(users['dave'], room, 'new since your last visit')\n"
        "mark_read(users['cara'], room, first.frame['id'])\n"
    )
    cara = open_page("cara", "/rooms/divider-run/")
    after = cara.locator(".new-divider + .message")
    expect(after).to_contain_text("new since your last visit")
    expect(after.locator(".message-user")).to_be_visible()
    expect(after.locator(".message-user")).to_have_text("dave")


def test_edited_shows_on_a_message_that_continues_a_run(site, open_page):
    server, _ = site
    room(server, "edit-run")
    cara, dave = open_page("cara", "/rooms/edit-run/"), open_page("dave", "/rooms/edit-run/")
    say(cara, "first of my run")
    expect(message(cara, "first of my run")).to_be_visible()
    say(cara, "second of my run")
    expect(message(cara, "second of my run")).to_be_visible()
    cara.keyboard.press("ArrowUp")
    cara.keyboard.press("Control+A")
    cara.keyboard.type("second of my run, fixed")
    cara.keyboard.press("Enter")
    continued = dave.locator(".message.is-continuation", has_text="second of my run, fixed")
    expect(continued).to_have_count(1)
    expect(continued.locator(".message-edited")).to_be_visible()


def test_reconnecting_counts_the_seconds_down(site, open_routed):
    server, _ = site
    room(server, "countdown")
    page, switch = open_routed("cara", "/rooms/countdown/")
    state = page.locator("[data-connection-state]")
    switch.down()
    # The back-off doubles with each failed attempt; wait for a wait of a few seconds.
    expect(state).to_have_text(re.compile(r"^Reconnecting in [2-9]s…$"), timeout=20_000)
    seconds = int(re.search(r"\d+", state.inner_text()).group())
    expect(state).to_have_text(f"Reconnecting in {seconds - 1}s…", timeout=1_500)
    switch.up(page)
    expect(state).to_have_attribute("data-state", "open")


def test_the_room_list_does_not_count_you_in_the_room_you_just_left(site, open_page):
    server, _ = site
    room(server, "just-left")
    cara = open_page("cara", "/rooms/just-left/")
    expect(cara.locator("[data-people]")).to_contain_text("cara (you)")
    cara.get_by_role("link", name="Rooms", exact=True).click()
    online = cara.locator('[data-room="just-left"] [data-online]')
    # Sooner than the list's 10 s poll: the page shown is right, or is corrected at once.
    expect(online).to_have_text("0 online", timeout=3_000)


def test_a_refused_message_can_be_dismissed_or_retried_and_its_note_is_not_covered(site, open_page):
    server, keys = site
    if "hank" not in keys:
        keys["hank"] = server.create_user("hank")
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Room\nfrom chat.services import mute_user\n"
        "Room.objects.get_or_create(slug='refused')\n"
        "mute_user(get_user_model().objects.get(username='boss'), 'hank', 'refused', 5)\n"
    )
    hank = open_page("hank", "/rooms/refused/")
    say(hank, "this one I drop")
    dropped = hank.locator(".message.is-failed", has_text="this one I drop")
    expect(dropped.locator(".message-failure")).to_contain_text("Not sent: A moderator muted you")
    say(hank, "this one I retry")
    failed = hank.locator(".message.is-failed", has_text="this one I retry")
    note = failed.locator(".message-failure")
    expect(note).to_be_visible()
    toast = hank.locator("[data-toast]")
    if toast.is_visible():
        a, b = toast.bounding_box(), note.bounding_box()
        assert a["y"] + a["height"] <= b["y"] or b["y"] + b["height"] <= a["y"], (a, b)

    dropped.get_by_role("button", name="Dismiss").click()
    expect(hank.locator(".message", has_text="this one I drop")).to_have_count(0)

    server.shell(
        "from chat.models import Mute\nMute.objects.filter(user__username='hank').delete()"
    )
    failed.get_by_role("button", name="Retry").click()
    expect(message(hank, "this one I retry")).to_have_count(1)
    expect(hank.locator(".message.is-failed, .message.is-pending")).to_have_count(0)
    hank.reload()
    expect(message(hank, "this one I retry")).to_have_count(1)
    expect(message(hank, "this one I drop")).to_have_count(0)


def test_console_confirms_a_mute_and_shows_an_announcement_once(site, open_page):
    server, _ = site
    room(server, "console-mute")
    console = open_page("boss", "/console/")
    console.fill("[data-mute-form] [name=user]", "dave")
    console.select_option("[data-mute-form] [name=room]", "console-mute")
    console.fill("[data-mute-form] [name=minutes]", "1")
    console.get_by_role("button", name="Mute").click()
    expect(console.locator("[data-toast]")).to_have_text(
        "Muted dave in #console-mute for 1 min.", timeout=TIMEOUT
    )
    rooms = (
        # Announcements go to the public rooms only (never to private rooms or DMs).
        server.shell(
            "from chat.models import Room\nprint(Room.objects.filter(kind='public').count())"
        )
        .strip()
        .splitlines()[-1]
    )

    console.fill("#announce-text", "One announcement, many rooms")
    console.get_by_role("button", name="Announce to everyone").click()
    expect(console.locator("[data-toast]")).to_have_text("Announced in every room.")
    shown = console.locator("[data-feed] .message", has_text="One announcement, many rooms")
    expect(shown).to_have_count(1)
    expect(shown.locator(".room-tag[data-room]")).to_have_count(int(rooms))


def test_the_console_says_when_its_login_is_gone(site, open_routed):
    server, keys = site
    console, switch = open_routed("stella", "/console/", staff=True)
    server.shell(
        "from django.contrib.sessions.models import Session\n"
        f"Session.objects.filter(session_key={keys['stella']!r}).delete()"
    )
    switch.down()
    switch.up(console)
    state = console.locator("[data-connection-state]")
    expect(state).to_have_text("Signed out")
    expect(console.locator("[data-signed-out]")).to_be_visible()
