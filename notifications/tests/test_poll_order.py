"""The poll feed's cursor on PostgreSQL: a notification whose transaction commits after a
later-numbered one for the same user was delivered is not skipped (each recipient's
notifications are numbered and committed in one order)."""

OVERTAKE = """
import threading
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from notifications import notify
from notifications.services import notifications_after

reader, _ = get_user_model().objects.get_or_create(username="reader")
saved, finish = threading.Event(), threading.Event()

def slow_writer():
    with transaction.atomic():
        notify(reader, verb="test", text="first")  # takes the lower id, commits last
        saved.set()
        finish.wait(10)
    connection.close()

def quick_writer():
    notify(reader, verb="test", text="second")
    connection.close()

slow = threading.Thread(target=slow_writer)
slow.start()
saved.wait(10)
quick = threading.Thread(target=quick_writer)
quick.start()
quick.join(1.0)  # a writer that may overtake the slow one has committed by now
polled, _ = notifications_after(reader.pk, 0)  # a poll answered meanwhile
cursor = polled[-1]["id"] if polled else 0
finish.set()
slow.join()
quick.join()
following, _ = notifications_after(reader.pk, cursor)  # the next poll, from that cursor
print(sorted(item["text"] for item in polled + following))
"""


def test_poll_cursor_never_skips_a_notification_that_commits_late_on_postgresql(
    live_server_factory, postgres_server
):
    server = live_server_factory(database_url=postgres_server)
    assert server.shell(OVERTAKE).strip() == "['first', 'second']"
