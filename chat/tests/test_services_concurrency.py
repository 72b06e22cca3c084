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
