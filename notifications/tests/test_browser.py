"""The notification bell in real Chromium against a real Daphne (in-memory layer, worker in
process): a chat @mention by one person lights the other person's bell, live over the WebSocket
and, when the browser has no WebSocket, through the long-poll fallback."""

import re

import pytest
from playwright.sync_api import expect

from conftest import watch_pages

TIMEOUT = 10_000


@pytest.fixture(scope="module")
def site(live_server):
    """The live server with a room and four people logged in (their session keys)."""
    names = ["nora", "otto", "pia", "quinn", "rosa", "sam", "tess", "uma", "vic"]
    # One shell (one Django start-up) for the room, the users and their sessions.
    live_server.shell(
        "from chat.models import Room\n"
        "Room.objects.get_or_create(slug='bells', title='Bells', topic='Notification tests')\n"
    )
    keys = live_server.create_sessions(names)
    return live_server, keys


@pytest.fixture
def open_page(site, browser):
    """open_page(user, path, init_script=None) -> a page in its own context, logged in as user."""
    server, keys = site
    contexts = []
    problems = []

    def open_(user: str, path: str, init_script: str | None = None, cut_sockets: bool = False):
        context = browser.new_context()
        problems.append(watch_pages(context))
        context.add_cookies([{"name": "sessionid", "value": keys[user], "url": server.url}])
        if init_script:
            context.add_init_script(init_script)
        if cut_sockets:  # like a proxy that lets the upgrade through, then drops the connection
            context.route_web_socket(re.compile(r"/ws/notifications/"), lambda ws: ws.close())
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(server.url + path)
        return page

    yield open_
    for context in contexts:
        context.close()
    assert [p.csp_violations for p in problems if p.csp_violations] == []


def mention(page, text: str) -> None:
    expect(page.locator("[data-connection-state]")).to_have_attribute("data-state", "open")
    page.fill("[data-composer-text]", text)
    page.press("[data-composer-text]", "Enter")


def test_a_mention_lights_the_other_persons_bell_live(open_page):
    otto = open_page("otto", "/notifications/")
    bell = otto.locator("[data-notification-bell]")
    expect(bell).to_have_attribute("data-transport", "socket")
    expect(otto.locator("[data-bell-count]")).to_be_hidden()

    nora = open_page("nora", "/rooms/bells/")
    mention(nora, "@otto the build is green")

    count = otto.locator("[data-bell-count]")
    expect(count).to_be_visible()
    expect(count).to_have_text("1")
    otto.click("[data-bell-toggle]")
    item = otto.locator("[data-bell-list] .notification-item.is-unread")
    expect(item).to_contain_text("nora in #bells: @otto the build is green")
    expect(nora.locator("[data-notification-bell] [data-bell-count]")).to_be_hidden()

    otto.click("[data-bell-read-all]")
    expect(count).to_be_hidden()
    expect(otto.locator("[data-bell-list] .notification-item.is-unread")).to_have_count(0)
    otto.reload()
    expect(otto.locator("[data-bell-count]")).to_be_hidden()


def test_opening_a_notification_goes_to_its_message_and_marks_it_read(open_page):
    sam = open_page("sam", "/notifications/")
    expect(sam.locator("[data-notification-bell]")).to_have_attribute("data-transport", "socket")
    nora = open_page("nora", "/rooms/bells/")
    mention(nora, "@sam see this message")
    expect(sam.locator("[data-bell-count]")).to_have_text("1")

    sam.click("[data-bell-toggle]")
    sam.click("[data-bell-list] .notification-item.is-unread a")
    expect(sam).to_have_url(re.compile(r"/rooms/bells/#message-\d+$"))
    expect(sam.locator("[data-bell-count]")).to_be_hidden()


def test_without_websockets_the_bell_falls_back_to_long_poll(open_page):
    quinn = open_page("quinn", "/notifications/", init_script="delete window.WebSocket;")
    expect(quinn.locator("[data-notification-bell]")).to_have_attribute("data-transport", "poll")

    pia = open_page("pia", "/rooms/bells/")
    mention(pia, "hey @quinn, polling works")

    count = quinn.locator("[data-bell-count]")
    expect(count).to_have_text("1")
    quinn.click("[data-bell-toggle]")
    expect(quinn.locator("[data-bell-list]")).to_contain_text("@quinn, polling works")
    quinn.click("[data-bell-read-all]")  # marks read through the API with the CSRF token
    expect(count).to_be_hidden()
    quinn.reload()
    expect(quinn.locator("[data-bell-count]")).to_be_hidden()


def test_a_socket_that_keeps_failing_falls_back_to_long_poll(open_page):
    rosa = open_page("rosa", "/notifications/", cut_sockets=True)
    expect(rosa.locator("[data-notification-bell]")).to_have_attribute("data-transport", "poll")

    nora = open_page("nora", "/rooms/bells/")
    mention(nora, "@rosa your socket is cut but this arrives")
    expect(rosa.locator("[data-bell-count]")).to_have_text("1")


def test_a_new_token_has_a_copy_button_and_the_name_field_is_styled(site, open_page):
    server, _ = site
    tess = open_page("tess", "/settings/tokens/")
    tess.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    name = tess.get_by_label("Name")
    create = tess.get_by_role("button", name="Create token")
    # The field looks like the site's other fields: full height, with the site's border radius.
    assert name.evaluate("e => getComputedStyle(e).borderTopLeftRadius") == "8px"
    assert name.bounding_box()["height"] >= create.bounding_box()["height"] - 1
    name.fill("my script")
    create.click()
    token = tess.locator("[data-new-token]").input_value()
    assert len(token) > 30
    copy = tess.locator("button[data-copy]")
    expect(copy).to_have_text("Copy")
    # The clipboard answers only the focused page; the shared browser holds other tests' pages,
    # and writeText() waited for focus until the check gave up (the test failed now and then).
    tess.bring_to_front()
    copy.click()
    expect(copy).to_have_text("Copied")
    assert tess.evaluate("navigator.clipboard.readText()") == token
    tess.set_viewport_size({"width": 390, "height": 800})
    assert tess.evaluate("document.documentElement.scrollWidth") <= 390


def test_read_and_unread_rows_of_the_notifications_page_line_up(site, open_page):
    server, _ = site
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from notifications import notify\n"
        "uma = get_user_model().objects.get(username='uma')\n"
        "[first] = notify(uma, verb='mention', text='an old one, already read')\n"
        "first.read = True; first.save()\n"
        "notify(uma, verb='mention', text='a new one, unread')\n"
    )
    uma = open_page("uma", "/notifications/")
    unread = uma.locator(".notification-row.is-unread .notification-body")
    read = uma.locator(".notification-row:not(.is-unread) .notification-body")
    expect(unread).to_have_count(1)
    expect(read).to_have_count(1)
    assert unread.bounding_box()["x"] == read.bounding_box()["x"]
