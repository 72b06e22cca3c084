"""Attention in real Chromium against a real Daphne, two people side by side: the unread count in
the tab title, desktop notifications (the real Notification API, observed by an init script that
wraps it) while the tab is hidden, and the per-room choice of what notifies."""

import os
from pathlib import Path

import pytest
from playwright.sync_api import expect

from chat.tests.conftest import message_item, say

ROOM_PAGE = "/rooms/attention/"  # what open_page(user) opens
TITLE = "#attention · Switchboard"

# Runs before the page's scripts: records every desktop notification the page shows (the real
# constructor still runs), counts permission requests, and lets the test hide and show the tab
# (headless pages are always "visible").
WATCH = """
(() => {
  const Real = window.Notification;
  window.__shown = [];
  window.__asked = 0;
  class Watched extends Real {
    constructor(title, options = {}) {
      super(title, options);
      window.__shown.push({ title, body: options.body || "", tag: options.tag || "" });
      window.__last = this;
    }
  }
  Object.defineProperty(Watched, "permission", { get: () => Real.permission });
  Watched.requestPermission = (...args) => {
    window.__asked += 1;
    return Real.requestPermission(...args);
  };
  window.Notification = Watched;
  let hidden = false;
  Object.defineProperty(document, "visibilityState", { get: () => (hidden ? "hidden" : "visible") });
  Object.defineProperty(document, "hidden", { get: () => hidden });
  window.__setHidden = (value) => {
    hidden = value;
    document.dispatchEvent(new Event("visibilitychange"));
  };
})();
"""


@pytest.fixture(scope="module")
def site(live_server):
    live_server.shell(
        "from chat.models import Room\n"
        "Room.objects.get_or_create(slug='attention', title='Attention')\n"
        "Room.objects.get_or_create(slug='elsewhere', title='Elsewhere')"
    )
    names = ("nia", "omar", "pim", "quill", "rae", "sol")
    return live_server, {name: live_server.create_user(name) for name in names}


def watched_page(open_page, user, allow=True):
    """The room page of `user` with the init script above; desktop notifications allowed (the
    browser's permission granted) or not asked yet."""
    options = {"permissions": ["notifications"]} if allow else {}
    page = open_page(user, "/", **options)
    page.context.add_init_script(WATCH)  # for the pages loaded from now on
    page.goto(page.url.rstrip("/") + ROOM_PAGE)
    expect(page.locator("[data-connection-state]")).to_have_attribute("data-state", "open")
    return page


def read_everything(server, username: str) -> None:
    """Move `username`'s read markers to the end of every room: the session's other test modules
    leave unread messages in their public rooms, which the tab title would count."""
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from django.db.models import Max\n"
        "from chat import access, services\n"
        f"user = get_user_model().objects.get(username={username!r})\n"
        "for room in access.readable_rooms(user).annotate(last=Max('messages__id')):\n"
        "    services.mark_read(user, room, room.last or 0)\n"
    )


def shown(page) -> list[dict]:
    return page.evaluate("window.__shown")


def test_hidden_tab_counts_unread_in_its_title_and_notifies_of_a_mention(open_page, site):
    read_everything(site[0], "nia")
    nia, omar = watched_page(open_page, "nia"), open_page("omar")
    expect(nia).to_have_title(TITLE)
    nia.evaluate("__setHidden(true)")
    say(omar, "@nia the build is green")
    expect(nia).to_have_title(f"(1) {TITLE}")
    say(omar, "and nothing else to add")
    expect(nia).to_have_title(f"(2) {TITLE}")
    expect(message_item(nia, "nothing else to add")).to_have_count(1)
    # Only the mention notifies (the default level), with who and where.
    assert [(n["title"], n["body"]) for n in shown(nia)] == [
        ("omar mentioned you in #attention", "@nia the build is green")
    ]
    # Clicking it shows the tab and the message; reading clears the count.
    nia.evaluate("__last.onclick(); __setHidden(false)")
    expect(message_item(nia, "the build is green")).to_be_in_viewport()
    expect(nia).to_have_title(TITLE)


def test_the_level_chosen_in_the_room_decides_what_notifies_and_is_kept(open_page):
    pim, omar = watched_page(open_page, "pim"), open_page("omar")
    pim.locator("[data-notify-menu] summary").click()
    expect(pim.locator("[data-notify-summary]")).to_have_text("Mentions")
    expect(pim.locator("[data-desktop-state]")).to_contain_text("on while this tab is hidden")
    expect(pim.locator("[data-desktop-enable]")).to_be_hidden()
    pim.select_option("[data-notify-level]", "nothing")
    expect(pim.locator("[data-notify-summary]")).to_have_text("Off")
    pim.evaluate("__setHidden(true)")
    say(omar, "@pim are you there?")
    expect(message_item(pim, "are you there?")).to_have_count(1)
    say(omar, "marker one")
    expect(message_item(pim, "marker one")).to_have_count(1)
    assert shown(pim) == []

    pim.reload()  # the choice is the server's, not the page's
    expect(pim.locator("[data-notify-level]")).to_have_value("nothing")
    pim.locator("[data-notify-menu] summary").click()
    pim.select_option("[data-notify-level]", "all")
    expect(pim.locator("[data-notify-summary]")).to_have_text("All")
    pim.evaluate("__setHidden(true)")
    say(omar, "just chatting")
    expect(message_item(pim, "just chatting")).to_have_count(1)
    assert [n["title"] for n in shown(pim)] == ["omar in #attention"]


def test_the_page_asks_for_permission_only_when_the_button_is_clicked(open_page):
    quill = watched_page(open_page, "quill", allow=False)
    quill.locator("[data-notify-menu] summary").click()
    button = quill.locator("[data-desktop-enable]")
    expect(button).to_be_visible()
    assert quill.evaluate("window.__asked") == 0
    button.click()
    assert quill.evaluate("window.__asked") == 1


def test_a_dm_and_a_mention_in_other_rooms_notify_a_hidden_tab(open_page, site):
    server, _ = site
    read_everything(server, "rae")
    rae, sol = watched_page(open_page, "rae"), open_page("sol", "/rooms/elsewhere/")
    rae.evaluate("__setHidden(true)")  # also asks for the other rooms' counts: the baseline
    say(sol, "@rae see #elsewhere")
    expect(rae.locator("[data-bell-count]")).to_have_text("1")
    rae.evaluate("__setHidden(true)")  # asked again (as every POLL_MS while hidden): #elsewhere
    expect(rae).to_have_title(f"(1) {TITLE}")
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat import attention, membership, services\n"
        "User = get_user_model()\n"
        "sol = User.objects.get(username='sol')\n"
        "dm, _ = membership.open_dm(sol, 'rae')\n"
        "attention.message_posted(sol, dm, services.post_message(sol, dm, 'lunch at noon?'))"
    )
    rae.evaluate("__setHidden(true)")
    expect(rae).to_have_title(f"(2) {TITLE}")
    titles = [n["title"] for n in shown(rae)]
    assert titles[0] == "sol in #elsewhere: @rae see #elsewhere"
    assert titles[1].startswith("New messages in ✉")


def test_attention_panel_renders_for_the_docs(open_page, tmp_path):
    """A screenshot of the room page with the notifications menu open, saved to
    SWITCHBOARD_SCREENSHOT_DIR (e.g. docs/images/) when set."""
    out = Path(os.environ.get("SWITCHBOARD_SCREENSHOT_DIR") or tmp_path)
    nia = open_page("nia", permissions=["notifications"])
    nia.set_viewport_size({"width": 1280, "height": 640})
    nia.locator("[data-notify-menu] summary").click()
    expect(nia.locator(".notify-panel")).to_be_visible()
    nia.screenshot(path=str(out / "chat-attention.png"))


def test_the_notifications_menu_fits_a_phone(open_page):
    nia = open_page("nia", viewport={"width": 390, "height": 800})
    nia.locator("[data-notify-menu] summary").click()
    panel = nia.locator(".notify-panel")
    expect(panel).to_be_visible()
    box = panel.bounding_box()
    assert box["x"] >= 0 and box["x"] + box["width"] <= 390
    assert nia.evaluate("document.documentElement.scrollWidth") <= 390
