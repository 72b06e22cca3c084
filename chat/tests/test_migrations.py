"""Migrations that change data keep every message."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("chat", "0004_message_search")]
AFTER = [("chat", "0005_message_client_id_unique")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_messages_saved_twice_before_the_unique_client_id_stay_and_only_the_copy_loses_it():
    apps = migrate(BEFORE)
    User = apps.get_model("auth", "User")
    Room = apps.get_model("chat", "Room")
    Message = apps.get_model("chat", "Message")
    alice = User.objects.create(username="alice")
    room = Room.objects.create(slug="general", seq=3)
    for seq in (1, 2, 3):
        Message.objects.create(
            room=room,
            user=alice,
            username="alice",
            text="hi",
            client_id="c-1",
            seq=seq,
            event_seq=seq,
        )
    try:
        apps = migrate(AFTER)
        rows = apps.get_model("chat", "Message").objects.order_by("id")
        assert [(m.seq, m.client_id) for m in rows] == [(1, "c-1"), (2, ""), (3, "")]
    finally:
        migrate(executor_leaf())


def executor_leaf():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()
