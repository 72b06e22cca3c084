"""The chat pages in real Chromium against a real Daphne: what two people see of each other."""

import pytest
from playwright.sync_api import expect

TIMEOUT = 10_000


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


@pytest.fixture
def open_page(site, browser):
    """open_page(user, path) -> a page in its own browser context, logged in as `user`."""
    server, keys = site
    contexts = []

    def open_(user: str, path: str = "/rooms/browser/", **context_options):
        context = browser.new_context(**context_options)
        context.add_cookies([{"name": "sessionid", "value": keys[user], "url": server.url}])
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(TIMEOUT)
        page.goto(server.url + path)
        expect(page.locator("[data-connection-state]")).to_have_attribute("data-state", "open")
        return page

    yield open_
    for context in contexts:
        context.close()


def say(page, text: str) -> None:
    page.fill("[data-composer-text]", text)
    page.press("[data-composer-text]", "Enter")


def message(page, text: str):
    return page.locator(".message:not(.is-pending) .message-text", has_text=text)


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
