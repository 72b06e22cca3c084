import json

import pytest
from django.test import Client

from notifications import protocol
from notifications.models import AccessToken, Notification
from notifications.services import notify

pytestmark = pytest.mark.django_db


def make_notifications(user, count: int, **fields) -> list[Notification]:
    return [notify(user, verb="test", text=f"note {i}", **fields)[0] for i in range(count)]


def test_api_lists_own_notifications_newest_first(ann_client, ann, bob):
    mine = make_notifications(ann, 3)
    make_notifications(bob, 2)
    response = ann_client.get("/api/notifications/")
    assert "no-store" in response["Cache-Control"]
    body = response.json()
    assert [n["id"] for n in body["notifications"]] == [n.id for n in reversed(mine)]
    assert body["unread"] == 3
    assert body["next_before"] is None
    first = body["notifications"][0]
    assert first["type"] == protocol.NOTIFICATION
    assert first["text"] == "note 2"
    assert first["read"] is False


def test_api_pages_with_before_and_limit(ann_client, ann):
    notes = make_notifications(ann, 5)
    page1 = ann_client.get("/api/notifications/?limit=2").json()
    assert [n["id"] for n in page1["notifications"]] == [notes[4].id, notes[3].id]
    assert page1["next_before"] == notes[3].id
    page2 = ann_client.get(f"/api/notifications/?limit=2&before={page1['next_before']}").json()
    assert [n["id"] for n in page2["notifications"]] == [notes[2].id, notes[1].id]
    page3 = ann_client.get(f"/api/notifications/?limit=2&before={page2['next_before']}").json()
    assert [n["id"] for n in page3["notifications"]] == [notes[0].id]
    assert page3["next_before"] is None


def test_api_unread_filter_hides_read_ones(ann_client, ann):
    notes = make_notifications(ann, 3)
    Notification.objects.filter(pk=notes[1].pk).update(read=True)
    body = ann_client.get("/api/notifications/?unread=1").json()
    assert [n["id"] for n in body["notifications"]] == [notes[2].id, notes[0].id]


@pytest.mark.parametrize(
    "query",
    [
        "unread=maybe",
        "before=abc",
        "before=0",
        "before=99999999999999999999",
        "limit=-1",
        "limit=x",
    ],
)
def test_api_bad_parameter_is_400_json_naming_it(ann_client, query):
    response = ann_client.get(f"/api/notifications/?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == protocol.ERROR_BAD_PARAMETER
    assert query.split("=")[0] in error["message"]


def test_api_anonymous_is_401_json(db):
    response = Client().get("/api/notifications/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == protocol.ERROR_NOT_AUTHENTICATED
    response = Client().post("/api/notifications/read/", "{}", content_type="application/json")
    assert response.status_code == 401


def test_api_mark_read_marks_only_own_ids(ann_client, ann, bob):
    mine = make_notifications(ann, 3)
    theirs = make_notifications(bob, 1)
    response = ann_client.post(
        "/api/notifications/read/",
        json.dumps({"ids": [mine[0].id, theirs[0].id]}),
        content_type="application/json",
    )
    assert response.json() == {"unread": 2}
    assert Notification.objects.get(pk=mine[0].pk).read
    assert not Notification.objects.get(pk=theirs[0].pk).read


def test_api_mark_all_read(ann_client, ann):
    make_notifications(ann, 4)
    response = ann_client.post(
        "/api/notifications/read/", json.dumps({"all": True}), content_type="application/json"
    )
    assert response.json() == {"unread": 0}
    assert not Notification.objects.filter(recipient=ann, read=False).exists()


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        '{"ids": "1"}',
        '{"ids": [1, "2"]}',
        '{"ids": [true]}',
        '{"ids": [99999999999999999999]}',
        "{}",
    ],
)
def test_api_mark_read_rejects_malformed_body(ann_client, ann, body):
    make_notifications(ann, 1)
    response = ann_client.post("/api/notifications/read/", body, content_type="application/json")
    assert response.status_code == 400
    assert "error" in response.json()
    assert Notification.objects.filter(recipient=ann, read=False).count() == 1


def test_api_post_with_session_requires_csrf_token(csrf_client, ann):
    make_notifications(ann, 1)
    response = csrf_client.post(
        "/api/notifications/read/", json.dumps({"all": True}), content_type="application/json"
    )
    assert response.status_code == 403
    assert response.json()["error"]["code"] == protocol.ERROR_CSRF_FAILED
    assert Notification.objects.filter(recipient=ann, read=False).count() == 1
    csrf_client.get("/notifications/")  # sets the csrftoken cookie, as a page load does
    token = csrf_client.cookies["csrftoken"].value
    response = csrf_client.post(
        "/api/notifications/read/",
        json.dumps({"all": True}),
        content_type="application/json",
        headers={"X-CSRFToken": token},
    )
    assert response.status_code == 200
    assert response.json() == {"unread": 0}


def test_api_bearer_token_reads_and_posts_without_csrf(ann, bob):
    make_notifications(ann, 2)
    make_notifications(bob, 1)
    _, raw = AccessToken.issue(ann, "script")
    client = Client(enforce_csrf_checks=True)
    auth = {"Authorization": f"Bearer {raw}"}
    body = client.get("/api/notifications/", headers=auth).json()
    assert len(body["notifications"]) == 2
    response = client.post(
        "/api/notifications/read/",
        json.dumps({"all": True}),
        content_type="application/json",
        headers=auth,
    )
    assert response.status_code == 200
    assert response.json() == {"unread": 0}


def test_api_bad_bearer_token_is_401_even_with_a_session(ann_client, ann):
    _, raw = AccessToken.issue(ann, "script")
    for header in ["Bearer sbt_wrong", "Bearer " + raw + "x", "Bearer "]:
        response = ann_client.get("/api/notifications/", headers={"Authorization": header})
        assert response.status_code == 401, header


def test_api_revoked_token_is_401(ann):
    token, raw = AccessToken.issue(ann, "script")
    token.delete()
    response = Client().get("/api/notifications/", headers={"Authorization": f"Bearer {raw}"})
    assert response.status_code == 401


def test_notifications_page_lists_and_marks_read(ann_client, ann):
    notes = make_notifications(ann, 2, url="/chat/lobby/")
    page = ann_client.get("/notifications/")
    assert page.status_code == 200
    assert b"note 0" in page.content and b"note 1" in page.content
    response = ann_client.post("/notifications/read/", {"ids": [notes[0].id]})
    assert response.status_code == 302
    assert [n.read for n in Notification.objects.order_by("id")] == [True, False]
    ann_client.post("/notifications/read/", {"all": "1"})
    assert not Notification.objects.filter(read=False).exists()


def test_notifications_page_requires_login(db):
    response = Client().get("/notifications/")
    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"]


def test_bell_shows_unread_count_and_recent(ann_client, ann):
    make_notifications(ann, 3)
    page = ann_client.get("/notifications/").content.decode()
    assert "data-notification-bell" in page
    assert "data-bell-count>3<" in page


def test_bell_is_only_shown_to_logged_in_users(ann_client, db):
    assert "data-notification-bell" in ann_client.get("/notifications/").content.decode()
    assert "data-notification-bell" not in Client().get("/accounts/login/").content.decode()


def test_token_page_shows_new_token_once_and_stores_only_its_hash(ann_client, ann):
    response = ann_client.post("/settings/tokens/", {"name": "laptop"})
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"
    raw = response.context["new_token"]
    assert raw in response.content.decode()
    token = AccessToken.objects.get(user=ann)
    assert token.name == "laptop"
    assert raw not in token.token_hash and token.token_hash == AccessToken.digest(raw)
    assert raw not in ann_client.get("/settings/tokens/").content.decode()
    assert AccessToken.objects.user_for(raw) == ann


def test_token_page_rejects_empty_name(ann_client, ann):
    response = ann_client.post("/settings/tokens/", {"name": "  "})
    assert response.status_code == 400
    assert not AccessToken.objects.exists()


def test_revoking_a_token_stops_it_working(ann_client, ann, bob):
    token, raw = AccessToken.issue(ann, "laptop")
    others, _ = AccessToken.issue(bob, "bobs")
    assert ann_client.post(f"/settings/tokens/{others.id}/revoke/").status_code == 404
    response = ann_client.post(f"/settings/tokens/{token.id}/revoke/")
    assert response.status_code == 302
    assert AccessToken.objects.user_for(raw) is None
    assert AccessToken.objects.filter(pk=others.pk).exists()
