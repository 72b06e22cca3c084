"""The /news/ page in Chromium, updating live while an `aprs_gateway --replay` process feeds it."""

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import expect

from aprs_news import services
from aprs_news.tests.conftest import sample_packet
from conftest import watch_pages

CLUB = sample_packet("VE3QRP-5>APRS,WIDE2-1,qAR,VE3GTA::BLN3CLUB")
CLUB_BY_RADIO = sample_packet("VE3QRP-5>APRS,VE3RPT*,WIDE2,qAR,VE3KTW-10::BLN3CLUB")
MARKUP_STATUS = sample_packet("VA3QZZ>")
WEATHER = sample_packet("CW4412>")
READER_ZONE = "Asia/Tokyo"
SLOW = 20_000  # ms: page loads and socket (re)connects on a busy 2-core machine


@pytest.fixture
def capture(tmp_path):
    path = tmp_path / "live.aprs"
    lines = ["# aprsc 2.1.19-g730c5c0", CLUB, MARKUP_STATUS, WEATHER, CLUB_BY_RADIO]
    path.write_text(
        "".join(f"{1795435200 + n * 0.2:.2f}\t{line}\n" for n, line in enumerate(lines))
    )
    return path


@pytest.fixture
def page(browser, news_server):
    session = news_server.create_user("newsreader")
    context = browser.new_context(timezone_id=READER_ZONE, locale="en-GB")
    problems = watch_pages(context)
    context.add_cookies([{"name": "sessionid", "value": session, "url": news_server.url}])
    page = context.new_page()
    yield page
    context.close()
    assert problems.csp_violations == []


def test_news_page_updates_live_as_the_gateway_feeds_it(page, news_server, capture):
    page.goto(f"{news_server.url}/news/")
    expect(page.locator("[data-news-live]")).to_have_attribute("data-state", "open", timeout=SLOW)
    expect(page.locator('[data-news-list="bulletins"] .news-item')).to_have_count(0)

    # Follow the CLUB bulletin group from the page.
    page.get_by_label("Bulletin group", exact=True).fill("club")
    page.get_by_role("button", name="Follow group").click()
    expect(page.locator('[data-follow-group="CLUB"]')).to_have_class("is-followed", timeout=SLOW)
    expect(page.locator("[data-news-live]")).to_have_attribute("data-state", "open", timeout=SLOW)

    gateway = news_server.start_process(
        "aprs_gateway", "--replay", str(capture), "--speed", "1", name="replay"
    )
    assert gateway.wait(30) == 0

    bulletins = page.locator('[data-news-list="bulletins"]')
    reports = page.locator('[data-news-list="reports"]')
    club = bulletins.locator(".news-item", has_text="Club meeting moved to Thursday")
    expect(club).to_have_count(1, timeout=SLOW)
    expect(club.locator(".news-source")).to_have_text("VE3QRP-5")
    expect(club.locator(".news-addressee")).to_have_text("BLN3CLUB")
    expect(club.locator(".news-seen")).to_have_attribute("data-seen-count", "2")  # re-send merged
    expect(club.locator(".news-seen")).to_be_visible()
    expect(reports.locator(".news-item")).to_have_count(2)

    # Packet text is text: the status's "<tonight>" is shown, not parsed as a tag.
    status = reports.locator(".news-item", has_text="VA3QZZ")
    expect(status.locator(".news-text")).to_have_text("Net <tonight> 19:00 & after, 'all welcome'")
    assert page.locator("tonight").count() == 0

    # Times are in the reader's zone.
    stamp = club.locator(".news-time").get_attribute("datetime")
    local = datetime.fromisoformat(stamp).astimezone(ZoneInfo(READER_ZONE))
    expect(club.locator(".news-time")).to_contain_text(local.strftime("%H:%M:%S"))

    # The raw packet on demand.
    raw = club.locator(".news-raw code")
    expect(raw).to_be_hidden()
    club.locator(".news-raw summary").click()
    expect(raw).to_have_text(CLUB)

    # Filter by type, then by callsign prefix; the URL keeps the filter.
    page.get_by_label("Type").select_option("weather")
    expect(club).to_be_hidden()
    expect(reports.locator(".news-item:visible")).to_have_count(1)
    assert "kind=weather" in page.url
    page.get_by_label("Type").select_option("")
    page.get_by_label("Callsign or region prefix").fill("va3")
    expect(status).to_be_visible()
    expect(club).to_be_hidden()

    # Following CLUB earned a notification for the new bulletin (once, not for the re-send),
    # which the bell in the header shows live.
    expect(page.locator("[data-bell-count]")).to_have_text("1", timeout=SLOW)
    count = news_server.shell(
        "from notifications.models import Notification; "
        "print(Notification.objects.filter(recipient__username='newsreader', "
        f"verb={services.NOTIFICATION_VERB!r}).count())"
    )
    assert count.strip().splitlines()[-1] == "1"


def test_news_page_fits_a_phone_screen_when_logged_in(browser, news_server):
    session = news_server.create_user("phonereader")
    context = browser.new_context(viewport={"width": 390, "height": 800})
    context.add_cookies([{"name": "sessionid", "value": session, "url": news_server.url}])
    page = context.new_page()
    page.goto(f"{news_server.url}/news/")
    follow = page.get_by_role("button", name="Follow group")
    expect(follow).to_be_visible(timeout=SLOW)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = follow.bounding_box()
    assert box["x"] + box["width"] <= 390
    context.close()
