"""`manage.py seed_demo` sets up the demo and can run again without duplicating anything."""

import pytest
from django.contrib.auth import authenticate
from django.core.management import call_command

from chat.models import Message, Room

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_accounts_rooms_and_messages_once():
    call_command("seed_demo", verbosity=0)
    counts = (Room.objects.count(), Message.objects.count())
    call_command("seed_demo", verbosity=0)
    assert (Room.objects.count(), Message.objects.count()) == counts
    assert {"general", "random", "help"} <= set(Room.objects.values_list("slug", flat=True))
    assert authenticate(username="alice", password="switchboard-demo") is not None
    assert authenticate(username="bob", password="switchboard-demo") is not None
    admin = authenticate(username="admin", password="switchboard-admin")
    assert admin is not None and admin.is_staff


def test_seed_demo_again_keeps_the_demo_users_logged_in():
    """`make run` re-runs seed_demo on every start; re-setting an unchanged password would change
    the session hash and silently log out every open page."""
    from django.test import Client

    call_command("seed_demo", verbosity=0)
    client = Client()
    assert client.login(username="alice", password="switchboard-demo")
    assert client.get("/notifications/").status_code == 200
    call_command("seed_demo", verbosity=0)
    assert client.get("/notifications/").status_code == 200
