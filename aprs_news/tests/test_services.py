"""services.py: de-duplication of re-sent news, follower notifications, filters, follows."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model

from aprs_news import services
from aprs_news.models import GENERAL_GROUP, NewsItem
from aprs_news.parsing import parse_packet
from aprs_news.tests.conftest import sample_packet
from notifications.models import Notification

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
CLUB_BY_INTERNET = "VE3QRP-5>APRS,WIDE2-1,qAR,VE3GTA::BLN3CLUB"
CLUB_BY_RADIO = "VE3QRP-5>APRS,VE3RPT*,WIDE2,qAR,VE3KTW-10::BLN3CLUB"


def news(fragment: str):
    return parse_packet(sample_packet(fragment))


@pytest.fixture
def ann():
    return get_user_model().objects.create_user("ann", "ann@example.com", "pass-word-123")


@pytest.fixture
def bob():
    return get_user_model().objects.create_user("bob", "bob@example.com", "pass-word-123")


def test_resent_bulletin_is_one_item_seen_again():
    first = services.record_news(news(CLUB_BY_INTERNET), NOON)
    again = services.record_news(news(CLUB_BY_RADIO), NOON + timedelta(minutes=10))
    assert first.created and not again.created
    assert again.item.pk == first.item.pk
    assert again.item.seen_count == 2
    assert again.item.last_seen == NOON + timedelta(minutes=10)
    assert again.item.raw == sample_packet(CLUB_BY_INTERNET)  # the first copy is kept
    assert NewsItem.objects.count() == 1


def test_same_bulletin_after_the_window_is_new_news(settings):
    settings.APRS_DEDUPE_WINDOW_SECONDS = 3600
    services.record_news(news(CLUB_BY_INTERNET), NOON)
    later = services.record_news(news(CLUB_BY_INTERNET), NOON + timedelta(hours=2))
    assert later.created
    assert NewsItem.objects.count() == 2


def test_window_counts_from_the_last_time_it_was_seen(settings):
    settings.APRS_DEDUPE_WINDOW_SECONDS = 3600
    services.record_news(news(CLUB_BY_INTERNET), NOON)
    services.record_news(news(CLUB_BY_INTERNET), NOON + timedelta(minutes=50))
    third = services.record_news(news(CLUB_BY_INTERNET), NOON + timedelta(minutes=100))
    assert not third.created
    assert third.item.seen_count == 3


def test_different_bulletins_from_one_station_are_separate_items():
    services.record_news(news("::BLN1     :Eastern"), NOON)
    services.record_news(news("::BLN2     :Net control"), NOON)
    assert NewsItem.objects.filter(source="W1QXA-10").count() == 2


def test_new_bulletin_notifies_followers_of_its_group_only(ann, bob):
    services.follow(ann, "club")
    services.follow(bob, "WX")
    services.record_news(news(CLUB_BY_INTERNET), NOON)
    [notification] = Notification.objects.all()
    assert notification.recipient == ann
    assert notification.verb == services.NOTIFICATION_VERB
    assert "BLN3CLUB" in notification.text and "VE3QRP-5" in notification.text
    assert "Club meeting moved to Thursday" in notification.text
    assert notification.url.startswith("/news/?group=CLUB")


def test_resent_bulletin_does_not_notify_again(ann):
    services.follow(ann, "CLUB")
    services.record_news(news(CLUB_BY_INTERNET), NOON)
    services.record_news(news(CLUB_BY_RADIO), NOON + timedelta(minutes=5))
    assert Notification.objects.filter(recipient=ann).count() == 1


def test_general_group_covers_plain_bulletins_and_announcements(ann):
    services.follow(ann, GENERAL_GROUP)
    services.record_news(news("::BLN1     :Eastern"), NOON)
    services.record_news(news("::BLNA     :"), NOON)
    services.record_news(news("::BLN1WX   :"), NOON)
    texts = sorted(Notification.objects.filter(recipient=ann).values_list("text", flat=True))
    assert len(texts) == 2
    assert any("announcement BLNA" in text for text in texts)


def test_status_and_weather_never_notify(ann):
    services.follow(ann, GENERAL_GROUP)
    services.record_news(news("JA1XQZ>APRS,TCPIP*,qAC,T2TOKYO:>"), NOON)
    services.record_news(news("CW4412>"), NOON)
    assert not Notification.objects.exists()


def test_recent_items_filter_by_kind_prefix_and_group():
    for fragment in ["::BLN1     :Eastern", "::BLN1WX   :", "CW4412>", "DL4XYZ>", "JA1XQZ>APRS"]:
        services.record_news(news(fragment), NOON)
    kinds = {item.kind for item in services.recent_items([NewsItem.Kind.BULLETIN])}
    assert kinds == {NewsItem.Kind.BULLETIN}
    assert [i.source for i in services.recent_items(prefix="DL")] == ["DL4XYZ"]
    assert [i.addressee for i in services.recent_items(group="WX")] == ["BLN1WX"]
    assert len(services.recent_items(limit=2)) == 2


def test_follow_and_unfollow_normalize_and_reject_bad_groups(ann):
    assert services.follow(ann, " wx ") == "WX"
    assert services.follow(ann, "WX") == "WX"
    assert services.followed_groups(ann) == ["WX"]
    services.unfollow(ann, "wx")
    assert services.followed_groups(ann) == []
    for bad in ["", "TOOLONG", "W X", "<b>"]:
        with pytest.raises(ValueError, match="bulletin group"):
            services.follow(ann, bad)


def test_prune_deletes_news_not_heard_for_the_retention_period(settings):
    settings.APRS_RETENTION_DAYS = 2
    settings.APRS_DEDUPE_WINDOW_SECONDS = 4 * 86400
    services.record_news(news("::BLN1     :Eastern"), NOON - timedelta(days=3))
    old_but_resent = services.record_news(news("CW4412>"), NOON - timedelta(days=3)).item
    services.record_news(news("CW4412>"), NOON - timedelta(hours=1))  # heard again: kept
    fresh = services.record_news(news("JA1XQZ>APRS"), NOON).item
    assert services.prune_news(NOON) == 1
    assert set(NewsItem.objects.values_list("pk", flat=True)) == {old_but_resent.pk, fresh.pk}


def test_failing_notifications_do_not_lose_the_bulletin(ann, monkeypatch):
    services.follow(ann, "CLUB")

    def broken_notify(*args, **kwargs):
        raise RuntimeError("notifications are down")

    monkeypatch.setattr(services, "notify", broken_notify)
    recorded = services.record_news(news(CLUB_BY_INTERNET), NOON)
    assert recorded.created
    assert NewsItem.objects.filter(addressee="BLN3CLUB").exists()
