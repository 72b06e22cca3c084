"""The room page's outbox when it holds more than the socket takes at once, in real Chromium
against a real Daphne.

The socket refuses frames beyond its budget (20 a second, bursts of 40) or beyond the 32 waiting
for their handler (realtime/generic/frames.py) as a run, with one error frame that cannot say which
messages it was. A page that sent a long outbox all at once after a reconnect had messages of that
run shown as pending for good, and the one error frame marked the oldest message in flight as not
sent, though the server saved it (Retry then saved it twice). The page now sends its outbox a few
messages at a time, paced inside the budget, so every refusal is the handler's own, in order.
"""

from playwright.sync_api import expect

from chat.tests import test_browser
from chat.tests.conftest import say
from chat.tests.test_browser_first_use import open_routed, room

site = test_browser.site
__all__ = ["open_routed", "site"]

TYPED_OFFLINE = 45  # more than the socket's queue (32) and burst (40)


def test_a_long_outbox_sent_after_a_reconnect_ends_with_every_message_sent_or_refused(
    site, open_routed
):
    server, _ = site
    room(server, "backlog")
    page, switch = open_routed("cara", "/rooms/backlog/")
    switch.down()
    expect(page.locator("[data-connection-state]")).to_have_attribute("data-state", "reconnecting")
    texts = [f"offline line {n:02d}." for n in range(TYPED_OFFLINE)]
    for text in texts:
        say(page, text)
    expect(page.locator(".message.is-pending")).to_have_count(TYPED_OFFLINE)
    switch.up(page)

    # Nothing waits for good: every message was either saved or refused (the room's limit of
    # messages a user may send at once), and says which.
    expect(page.locator(".message.is-pending")).to_have_count(0, timeout=30_000)
    saved = [
        line
        for line in server.shell(
            "from chat.models import Message\n"
            "for text in Message.objects.filter(room__slug='backlog').values_list('text', flat=True):\n"
            "    print(text)\n"
        ).splitlines()
        if line.startswith("offline line")
    ]
    assert saved, "none of the messages was saved"
    for text in texts:
        delivered = page.locator(".message:not(.is-pending):not(.is-failed)", has_text=text)
        refused = page.locator(".message.is-failed", has_text=text)
        if text in saved:
            expect(delivered).to_have_count(1)
            expect(refused).to_have_count(0)
        else:
            expect(delivered).to_have_count(0)
            expect(refused).to_have_count(1)
    assert sorted(saved) == sorted(set(saved)), "a message was saved twice"
