"""The /news/ page and the follow/unfollow endpoints."""

from datetime import UTC, datetime

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from aprs_news import services
from aprs_news.models import BulletinFollow
from aprs_news.parsing import parse_packet
from aprs_news.tests.conftest import sample_packet

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
SAMPLE_NEWS = [
    "::BLN1WX   :NWS",  # bulletin, group WX
    "::BLNA     :",  # announcement
    "VA3QZZ>",  # status with <markup> characters
    "CW4412>",  # weather
    "DL4XYZ>",  # bulletin, group DX, German station
]


@pytest.fixture
def news():
    for fragment in SAMPLE_NEWS:
        services.record_news(parse_packet(sample_packet(fragment)), NOON)


@pytest.fixture
def ann():
    return get_user_model().objects.create_user("ann", "ann@example.com", "pass-word-123")


@pytest.fixture
def ann_client(ann) -> Client:
    client = Client()
    client.force_login(ann)
    return client


def column(html: str, name: str) -> str:
    start = html.index(f'data-news-list="{name}"')
    return html[start : html.index("</ul>", start)]


def test_page_shows_bulletins_and_reports_in_their_columns(client, news):
    html = client.get("/news/").content.decode()
    bulletins, reports = column(html, "bulletins"), column(html, "reports")
    assert "Winter storm warning for the Blue Ridge" in bulletins
    assert "Hamfest Saturday" in bulletins
    assert "CW4412" in reports and "hPa" in reports
    assert "CW4412" not in bulletins


def test_packet_text_is_shown_as_text_never_html(client, news):
    html = client.get("/news/").content.decode()
    assert "Net &lt;tonight&gt; 19:00 &amp; after" in html
    assert "<tonight>" not in html


def test_each_item_has_source_time_and_raw_packet_on_demand(client, news):
    html = client.get("/news/?prefix=DL4").content.decode()
    item = column(html, "bulletins")
    assert 'data-source="DL4XYZ"' in item
    assert 'datetime="2026-11-23T12:00:00+00:00"' in item
    assert "<details" in item and "DL4XYZ&gt;APDW17,TCPIP*,qAC,T2ERFURT::BLN1DX" in item


@pytest.mark.parametrize(
    ("query", "present", "absent"),
    [
        ("?kind=weather", ["CW4412"], ["KX4ZZB", "VA3QZZ"]),
        ("?prefix=dl", ["DL4XYZ"], ["KX4ZZB", "CW4412"]),
        ("?group=WX", ["KX4ZZB"], ["DL4XYZ", "CW4412"]),
        ("?kind=nonsense&prefix=<x>", ["KX4ZZB", "CW4412"], []),  # bad filters are dropped
    ],
)
def test_query_parameters_filter_the_page(client, news, query, present, absent):
    html = client.get(f"/news/{query}").content.decode()
    lists = column(html, "bulletins") + column(html, "reports")
    for source in present:
        assert f'data-source="{source}"' in lists
    for source in absent:
        assert f'data-source="{source}"' not in lists


def test_anonymous_visitor_is_invited_to_log_in_and_cannot_follow(client, news):
    html = client.get("/news/").content.decode()
    assert "/accounts/login/" in html and "Follow</button>" not in html
    response = client.post("/news/follow/", {"group": "WX"})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    assert not BulletinFollow.objects.exists()


def test_logged_in_user_follows_and_unfollows_a_group(ann_client, ann, news):
    response = ann_client.post("/news/follow/", {"group": "wx", "next": "/news/?kind=bulletin"})
    assert response.status_code == 302 and response["Location"] == "/news/?kind=bulletin"
    assert services.followed_groups(ann) == ["WX"]
    html = ann_client.get("/news/").content.decode()
    assert 'class="is-followed" data-follow-group="WX"' in html
    response = ann_client.post("/news/unfollow/", {"group": "WX"}, HTTP_ACCEPT="application/json")
    assert response.json() == {"group": "WX", "following": False}
    assert services.followed_groups(ann) == []


def test_follow_answers_json_to_scripts(ann_client):
    response = ann_client.post("/news/follow/", {"group": "club"}, HTTP_ACCEPT="application/json")
    assert response.json() == {"group": "CLUB", "following": True}


def test_bad_group_is_a_400_with_the_reason(ann_client):
    response = ann_client.post("/news/follow/", {"group": "<script>"})
    assert response.status_code == 400
    assert "bulletin group" in response.content.decode()


def test_follow_refuses_a_redirect_to_another_site(ann_client):
    response = ann_client.post("/news/follow/", {"group": "WX", "next": "https://evil.example/"})
    assert response["Location"] == "/news/"


def test_follow_needs_post_and_csrf(ann):
    client = Client(enforce_csrf_checks=True)
    client.force_login(ann)
    assert client.get("/news/follow/").status_code == 405
    assert client.post("/news/follow/", {"group": "WX"}).status_code == 403
    assert not BulletinFollow.objects.exists()
