"""Room event numbers stay gapless and in commit order when several processes post at once, on
SQLite and on PostgreSQL."""

from concurrent.futures import ThreadPoolExecutor

PROCESSES = 3
MESSAGES = 40

POST = (
    "from django.contrib.auth import get_user_model\n"
    "from chat.models import Room\nfrom chat.services import post_message\n"
    "user, _ = get_user_model().objects.get_or_create(username='{name}')\n"
    "room = Room.objects.get(slug='race')\n"
    "for n in range({count}):\n"
    "    post_message(user, room, f'{name} {{n}}')\n"
)

CHECK = (
    "from chat.models import Message, Room\n"
    "rows = Message.objects.filter(room__slug='race').order_by('id')\n"
    "seqs = list(rows.values_list('seq', flat=True))\n"
    "print(seqs == sorted(seqs), sorted(seqs) == list(range(1, len(seqs) + 1)), len(seqs),"
    " Room.objects.get(slug='race').seq)\n"
)


def race(server) -> list[str]:
    server.shell("from chat.models import Room\nRoom.objects.create(slug='race')")
    with ThreadPoolExecutor(PROCESSES) as pool:
        runs = [
            pool.submit(server.shell, POST.format(name=f"writer{i}", count=MESSAGES))
            for i in range(PROCESSES)
        ]
        for run in runs:
            run.result(timeout=120)
    return server.shell(CHECK).split()


def test_concurrent_processes_number_room_events_without_gaps_on_sqlite(live_server_factory):
    total = str(PROCESSES * MESSAGES)
    assert race(live_server_factory()) == ["True", "True", total, total]


def test_concurrent_processes_number_room_events_without_gaps_on_postgresql(
    live_server_factory, postgres_server
):
    total = str(PROCESSES * MESSAGES)
    assert race(live_server_factory(database_url=postgres_server)) == ["True", "True", total, total]


RETRY = (
    "from django.contrib.auth import get_user_model\n"
    "from chat.models import Room\nfrom chat.services import post_message\n"
    "user, _ = get_user_model().objects.get_or_create(username='retrier')\n"
    "room = Room.objects.get(slug='retry')\n"
    "print(*[post_message(user, room, f'm{{n}}', client_id=f'c-{{n}}').frame['id']"
    " for n in range({count})])\n"
)

RETRY_CHECK = (
    "from chat.models import Message, Room\n"
    "seqs = sorted(Message.objects.filter(room__slug='retry').values_list('seq', flat=True))\n"
    "print(len(seqs), seqs == list(range(1, len(seqs) + 1)), Room.objects.get(slug='retry').seq)\n"
)


def retry_race(server) -> tuple[set[str], list[str]]:
    """Several processes post the same client_ids for one user at once (one page retrying)."""
    server.shell(
        "from django.contrib.auth import get_user_model\nfrom chat.models import Room\n"
        "get_user_model().objects.create(username='retrier')\nRoom.objects.create(slug='retry')"
    )
    with ThreadPoolExecutor(PROCESSES) as pool:
        runs = [pool.submit(server.shell, RETRY.format(count=MESSAGES)) for _ in range(PROCESSES)]
        ids = {run.result(timeout=120).strip() for run in runs}
    return ids, server.shell(RETRY_CHECK).split()


def test_concurrent_retries_of_one_message_save_it_once_on_sqlite(live_server_factory):
    ids, check = retry_race(live_server_factory())
    assert len(ids) == 1  # every process was answered with the same stored messages
    assert check == [str(MESSAGES), "True", str(MESSAGES)]


def test_concurrent_retries_of_one_message_save_it_once_on_postgresql(
    live_server_factory, postgres_server
):
    ids, check = retry_race(live_server_factory(database_url=postgres_server))
    assert len(ids) == 1
    assert check == [str(MESSAGES), "True", str(MESSAGES)]
