"""DatabaseSessionStore: Django's database session store with a plainer read; what it loads is
what Django's store loads, for live, expired, unknown and deleted sessions."""

import datetime

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone

from realtime.sessions import DatabaseSessionStore, session_store_class

pytestmark = pytest.mark.django_db


def stored(**data) -> str:
    session = SessionStore()
    session.update(data)
    session.create()
    return session.session_key


def test_the_database_engine_gets_the_plain_read_store(settings):
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.db"
    assert session_store_class() is DatabaseSessionStore
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    assert session_store_class().__module__ == "django.contrib.sessions.backends.signed_cookies"


def test_a_live_session_loads_the_same_data_as_djangos_store():
    key = stored(colour="green", count=3, nested={"a": [1, 2]})
    ours, django = DatabaseSessionStore(key), SessionStore(key)
    assert ours.load() == django.load() == {"colour": "green", "count": 3, "nested": {"a": [1, 2]}}
    assert ours.session_key == key


def test_an_expired_session_loads_empty_and_forgets_its_key():
    key = stored(colour="green")
    Session.objects.filter(session_key=key).update(
        expire_date=timezone.now() - datetime.timedelta(seconds=1)
    )
    ours, django = DatabaseSessionStore(key), SessionStore(key)
    assert ours.load() == django.load() == {}
    assert ours.session_key is None and django.session_key is None


def test_an_unknown_or_deleted_session_loads_empty():
    key = stored(colour="green")
    SessionStore(key).delete()
    for missing in (key, "x" * 32):
        store = DatabaseSessionStore(missing)
        assert store.load() == {}
        assert store.session_key is None


def test_a_session_saved_through_it_is_read_back_by_django():
    store = DatabaseSessionStore()
    store["colour"] = "blue"
    store.create()
    assert SessionStore(store.session_key).load() == {"colour": "blue"}
    store["colour"] = "red"
    store.save()
    assert DatabaseSessionStore(store.session_key).load() == {"colour": "red"}
