"""Django admin lists rooms, messages, mutes and the audit log for staff."""

import pytest
from django.test import Client

from chat.models import AuditEntry
from chat.services import delete_message, post_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(moderator) -> Client:
    moderator.is_superuser = True
    moderator.save()
    client = Client()
    client.force_login(moderator)
    return client


@pytest.mark.parametrize("model", ["room", "message", "mute", "readmarker", "auditentry"])
def test_admin_changelists_render(admin_client, room, alice, model):
    post_message(alice, room, "listed")
    assert admin_client.get(f"/admin/chat/{model}/").status_code == 200


def test_audit_log_lists_moderator_actions_and_is_read_only(admin_client, room, alice, moderator):
    event = post_message(alice, room, "spam")
    delete_message(moderator, event.frame["id"], room)
    page = admin_client.get("/admin/chat/auditentry/")
    assert b"spam" in page.content
    entry = AuditEntry.objects.get()
    assert admin_client.get(f"/admin/chat/auditentry/{entry.pk}/change/").status_code == 200
    assert admin_client.post(f"/admin/chat/auditentry/{entry.pk}/change/", {}).status_code == 403
    assert admin_client.get("/admin/chat/auditentry/add/").status_code == 403
