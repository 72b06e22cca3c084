import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from notifications.models import AccessToken
from notifications.services import notify

pytestmark = pytest.mark.django_db


def test_staff_can_list_notifications_and_tokens_but_not_add_tokens(ann):
    admin = get_user_model().objects.create_superuser("root", "root@example.com")
    client = Client()
    client.force_login(admin)
    notify(ann, verb="mention", text="seen in the admin")
    AccessToken.issue(ann, "ann's script")
    page = client.get("/admin/notifications/notification/")
    assert page.status_code == 200 and b"seen in the admin" in page.content
    page = client.get("/admin/notifications/accesstoken/")
    assert page.status_code == 200 and b"ann&#x27;s script" in page.content
    assert client.get("/admin/notifications/accesstoken/add/").status_code == 403
