import pytest

from notifications import protocol
from notifications.models import TOKEN_PREFIX, AccessToken
from notifications.services import notify

pytestmark = pytest.mark.django_db


def test_issued_token_is_random_prefixed_and_stored_only_as_a_digest(ann):
    first, raw = AccessToken.issue(ann, "one")
    _, other = AccessToken.issue(ann, "two")
    assert raw.startswith(TOKEN_PREFIX) and len(raw) > 40 and raw != other
    stored = AccessToken.objects.get(pk=first.pk)
    assert raw not in {stored.token_hash, stored.hint, stored.name}
    assert stored.hint == raw[: len(TOKEN_PREFIX) + 4]


def test_token_lookup_finds_the_owner_and_records_use(ann):
    token, raw = AccessToken.issue(ann, "cli")
    assert token.last_used is None
    assert AccessToken.objects.user_for(raw) == ann
    assert AccessToken.objects.get(pk=token.pk).last_used is not None


def test_token_lookup_refuses_unknown_tokens_and_inactive_users(ann):
    _, raw = AccessToken.issue(ann, "cli")
    assert AccessToken.objects.user_for(raw[:-1]) is None
    assert AccessToken.objects.user_for("not-a-token") is None
    assert AccessToken.objects.user_for("") is None
    ann.is_active = False
    ann.save()
    assert AccessToken.objects.user_for(raw) is None


def test_frame_names_the_actor_and_has_iso_time(ann, bob):
    [mention] = notify(ann, verb="mention", text="hi", url="/rooms/x/", actor=bob)
    [system] = notify(ann, verb="announcement", text="hello")
    frame = mention.as_frame()
    assert frame["type"] == protocol.NOTIFICATION
    assert frame["actor"] == "bob"
    assert frame["created"].endswith("+00:00")
    assert system.as_frame()["actor"] == ""
