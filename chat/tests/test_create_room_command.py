"""`manage.py create_room`: the operator's way to make the first rooms (no demo accounts)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from chat.models import Room

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    out = StringIO()
    call_command("create_room", *args, stdout=out)
    return out.getvalue()


def test_creates_a_room_with_title_and_topic_and_no_accounts():
    output = run("general", "--title", "General", "--topic", "Anything goes.")
    room = Room.objects.get(slug="general")
    assert (room.title, room.topic) == ("General", "Anything goes.")
    assert "Created room #general" in output
    assert get_user_model().objects.count() == 0


def test_rerunning_updates_only_what_is_given():
    run("help", "--title", "Help", "--topic", "Questions")
    output = run("help", "--topic", "Questions about Switchboard")
    room = Room.objects.get(slug="help")
    assert (room.title, room.topic) == ("Help", "Questions about Switchboard")
    assert "Updated room #help" in output
    assert Room.objects.count() == 1


@pytest.mark.parametrize(
    ("slug", "reason"),
    [("no spaces", "letters, digits"), ("admin", "reserved"), ("x" * 51, "at most 50")],
)
def test_a_bad_slug_is_refused_with_the_reason_and_nothing_saved(slug, reason):
    with pytest.raises(CommandError) as error:
        run(slug)
    assert reason in str(error.value)
    assert Room.objects.count() == 0
