"""backend_user: the plain read of a session's user answers what the backend's get_user answers,
field for field, for active, inactive, missing and custom-backend users."""

import datetime

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import AllowAllUsersModelBackend, ModelBackend
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from realtime.user_lookup import backend_user, read_user

pytestmark = pytest.mark.django_db


def field_values(user) -> dict:
    return {f.attname: getattr(user, f.attname) for f in user._meta.concrete_fields}


@pytest.fixture
def ada():
    user = get_user_model().objects.create_user(
        "ada", email="ada@example.com", password="pw-1234567", first_name="Ada", is_staff=True
    )
    user.last_login = timezone.now() - datetime.timedelta(hours=3)
    user.save()
    return user


def test_the_plain_read_equals_the_orms_user_field_for_field(ada):
    ours = backend_user(ModelBackend(), ada.pk)
    django = ModelBackend().get_user(ada.pk)
    assert field_values(ours) == field_values(django)
    assert isinstance(ours.last_login, datetime.datetime) and ours.last_login.tzinfo is not None
    assert ours.is_staff is True and ours.is_active is True
    assert ours.get_session_auth_hash() == django.get_session_auth_hash()
    assert ours._state.adding is False and ours._state.db == "default"


def test_the_plain_read_is_one_query(ada):
    with CaptureQueriesContext(connection) as queries:
        backend_user(ModelBackend(), ada.pk)
    assert len(queries) == 1


def test_an_inactive_user_is_refused_by_the_model_backend_as_django_refuses_it(ada):
    ada.is_active = False
    ada.save()
    assert ModelBackend().get_user(ada.pk) is None
    assert backend_user(ModelBackend(), ada.pk) is None
    allowed = backend_user(AllowAllUsersModelBackend(), ada.pk)
    assert allowed is not None and allowed.pk == ada.pk


def test_a_missing_user_is_none():
    assert backend_user(ModelBackend(), 987654) is None
    assert read_user(987654) is None


def test_another_backend_is_asked_itself(ada):
    class OnlyAda(ModelBackend):
        def get_user(self, user_id):
            return "asked"

    assert backend_user(OnlyAda(), ada.pk) == "asked"
