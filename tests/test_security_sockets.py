"""Attacks on the sockets, made over a real Daphne with a raw client that ignores every close.

Each row of ATTACKS is one attack and the answer it must get; the test then asks the database
(through the server's own `manage.py shell`) that nothing the attack asked for happened:

| attack                                                       | expected answer                 |
|--------------------------------------------------------------|---------------------------------|
| non-staff user sends announce + mute right after the 101     | close 4403; nothing posted,     |
|   on the console, and again after the close                  |   muted, audited or notified    |
| anonymous visitor does the same                              | close 4401; nothing happens     |
| a room that does not exist, then chat frames                 | close 4404; nothing is saved    |
| an oversized frame, then a valid message                     | too_large + close 4009; the     |
|                                                              |   message after it is not saved |
| a non-member on a private room's socket: a message claiming  | close 4403; nothing posted,     |
|   the owner's upload, a notify level, a read marker          |   claimed, set or marked        |
| two sockets send one upload in two messages at once          | one is posted with it, the      |
|                                                              |   other refused (not_found)     |
| anonymous notification stream sends read_all                 | close 4401; nothing marked read |
| frames nested 10,000 deep, ids of 10^30, NaN                 | malformed; the socket stays     |
| a flood of frames on one socket                              | rate_limited once; later frames |
|                                                              |   within budget work again      |

The account tests (logout, password change, deactivation, staff removed) run on two processes
sharing Redis, the change made by a third (`manage.py shell`), as an admin would.
"""

from __future__ import annotations

import json
import socket as socket_module
import time
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

import pytest

from chat import protocol as chat_protocol
from realtime.generic import frames
from tests.raw_websocket import RawWebSocket

ANNOUNCE = json.dumps({"type": "announce", "text": "pwned", "client_id": "attack"})
MUTE = json.dumps({"type": "mute", "user": "sock-victim", "room": None, "minutes": 43200})


@pytest.fixture(scope="module")
def accounts(live_server) -> dict[str, str]:
    """Session keys of a member, a victim and a room; `None` stands for anonymous."""
    keys = {
        "sock-member": live_server.create_user("sock-member"),
        "sock-victim": live_server.create_user("sock-victim"),
    }
    live_server.shell("from chat.models import Room\nRoom.objects.get_or_create(slug='sockets')\n")
    return keys


def counts(server, expressions: dict[str, str]) -> dict[str, int]:
    """Evaluate counts on the server's database (its own process, its own settings)."""
    code = (
        "import json\n"
        "from chat.models import AuditEntry, Message, Mute\n"
        "from notifications.models import Notification\n"
        "print(json.dumps({" + ", ".join(f"{k!r}: {v}" for k, v in expressions.items()) + "}))\n"
    )
    return json.loads(server.shell(code).strip().splitlines()[-1])


def count(server, expression: str) -> int:
    return counts(server, {"n": expression})["n"]


def attack(server, path: str, session: str | None, payloads: list[str]) -> tuple[list[str], int]:
    """Send `payloads` right after the handshake, read to the close, send them all again after
    the close; return what the server sent and its close code."""
    socket = RawWebSocket.open(server.port, path, origin=server.url, session=session)
    try:
        for payload in payloads:
            socket.send_text(payload)
        texts, code = socket.texts_until_close(timeout=10)
        for payload in payloads:
            socket.send_text(payload)
        time.sleep(0.3)  # give the server the chance to (wrongly) act on them
    finally:
        socket.abort()
    assert code is not None, f"{path}: the server never closed; it sent {texts}"
    return texts, code


@pytest.mark.parametrize(
    ("who", "expected_close"),
    [("sock-member", frames.CLOSE_FORBIDDEN), (None, frames.CLOSE_LOGIN_REQUIRED)],
    ids=["non-staff", "anonymous"],
)
def test_refused_console_runs_no_frame_sent_before_or_after_the_close(
    live_server, accounts, who, expected_close
):
    what = {
        "announcements": "Message.objects.filter(kind='announcement').count()",
        "mutes": "Mute.objects.count()",
        "audit": "AuditEntry.objects.count()",
        "notifications": "Notification.objects.count()",
    }
    before = counts(live_server, what)
    session = accounts[who] if who else None
    _, code = attack(live_server, "/ws/chat/admin/", session, [ANNOUNCE, MUTE] * 5)
    assert code == expected_close
    after = counts(live_server, what)
    assert after == before


def test_a_missing_room_saves_nothing_sent_after_its_4404(live_server, accounts):
    message = json.dumps({"type": "message", "text": "into the void"})
    before = count(live_server, "Message.objects.filter(text='into the void').count()")
    _, code = attack(live_server, "/ws/chat/no-such-room/", accounts["sock-member"], [message])
    assert code == chat_protocol.CLOSE_NO_SUCH_ROOM
    assert count(live_server, "Message.objects.filter(text='into the void').count()") == before


def test_nothing_sent_after_an_oversized_frame_is_saved(live_server, accounts):
    oversized = json.dumps({"type": "message", "text": "x" * chat_protocol.MAX_FRAME_BYTES})
    after_it = json.dumps({"type": "message", "text": "after the oversized frame"})
    texts, code = attack(
        live_server, "/ws/chat/sockets/", accounts["sock-member"], [oversized, after_it]
    )
    assert code == frames.CLOSE_TOO_LARGE
    errors = [json.loads(t) for t in texts if json.loads(t)["type"] == frames.ERROR]
    assert [e["code"] for e in errors] == [frames.TOO_LARGE]
    assert (
        count(live_server, "Message.objects.filter(text='after the oversized frame').count()") == 0
    )


def test_a_non_member_on_a_private_room_socket_posts_claims_and_sets_nothing(live_server, accounts):
    """The victim's private room has an upload of theirs not sent yet. An outsider opens the
    room's socket and sends, right after the 101 and again after the close: a message naming
    that upload, a notify level and a read marker. Close 4403 and none of it happens."""
    setup = (
        "from django.contrib.auth import get_user_model\n"
        "from django.core.files.uploadedfile import SimpleUploadedFile\n"
        "from chat import membership, uploads\n"
        "victim = get_user_model().objects.get(username='sock-victim')\n"
        "room, _ = membership.create_private_room(victim, 'Victim only')\n"
        "file = SimpleUploadedFile('plans.txt', b'the plans\\n')\n"
        "upload = uploads.store_upload(victim, room, file)\n"
        "print(room.slug, upload.pk)\n"
    )
    slug, upload_id = live_server.shell(setup).strip().splitlines()[-1].split()
    payloads = [
        json.dumps({"type": "message", "text": "mine now", "attachments": [int(upload_id)]}),
        json.dumps({"type": "notify", "level": "all"}),
        json.dumps({"type": "read", "id": 1}),
    ]
    _, code = attack(live_server, f"/ws/chat/{slug}/", accounts["sock-member"], payloads)
    assert code == chat_protocol.CLOSE_FORBIDDEN
    code = (
        "import json\n"
        "from chat.models import Attachment, Message, NotifySetting, ReadMarker\n"
        f"room = {slug!r}\n"
        "print(json.dumps([Message.objects.filter(room__slug=room, text='mine now').count(),\n"
        f"    Attachment.objects.filter(pk={upload_id}, message__isnull=False).count(),\n"
        "    NotifySetting.objects.filter(room__slug=room).count(),\n"
        "    ReadMarker.objects.filter(room__slug=room).count()]))\n"
    )
    assert json.loads(live_server.shell(code).strip().splitlines()[-1]) == [0, 0, 0, 0]


def test_one_upload_sent_in_two_messages_at_once_is_attached_once(live_server, accounts):
    """Two sockets of its uploader send a message naming the same upload, both frames written
    before either answer is read: one message gets it, the other is refused whole."""
    setup = (
        "from django.contrib.auth import get_user_model\n"
        "from django.core.files.uploadedfile import SimpleUploadedFile\n"
        "from chat import uploads\n"
        "from chat.models import Room\n"
        "user = get_user_model().objects.get(username='sock-member')\n"
        "room = Room.objects.get(slug='sockets')\n"
        "print(uploads.store_upload(user, room, SimpleUploadedFile('x.txt', b'once\\n')).pk)\n"
    )
    upload_id = int(live_server.shell(setup).strip().splitlines()[-1])
    sockets = [
        RawWebSocket.open(
            live_server.port, "/ws/chat/sockets/", origin=live_server.url,
            session=accounts["sock-member"],
        )
        for _ in range(2)
    ]  # fmt: skip
    try:
        for index, socket in enumerate(sockets):
            socket.send_text(
                json.dumps(
                    {
                        "type": "message",
                        "text": f"race {upload_id} {index}",
                        "client_id": f"race-{upload_id}-{index}",
                        "attachments": [upload_id],
                    }
                )
            )
        answers = []
        for socket in sockets:
            texts, _ = socket.texts_until_close(timeout=3)
            answers.append([json.loads(text) for text in texts])
    finally:
        for socket in sockets:
            socket.abort()
    errors = [f for frames_of in answers for f in frames_of if f["type"] == frames.ERROR]
    assert [e["code"] for e in errors] == [chat_protocol.NOT_FOUND]
    code = (
        "import json\n"
        "from chat.models import Attachment, Message\n"
        f"saved = Message.objects.filter(text__startswith='race {upload_id} ')\n"
        f"attached = Attachment.objects.get(pk={upload_id}).message_id\n"
        "print(json.dumps([saved.count(), attached == saved.first().pk]))\n"
    )
    assert json.loads(live_server.shell(code).strip().splitlines()[-1]) == [1, True]


def test_anonymous_notification_stream_marks_nothing_read(live_server, accounts):
    _, code = attack(live_server, "/ws/notifications/", None, ['{"type": "read_all"}'])
    assert code == frames.CLOSE_LOGIN_REQUIRED


PROBE_BEFORE = 99999999


@pytest.mark.parametrize(
    "payload",
    [
        '{"type": "history", "before": ' + "[" * 2000 + "]" * 2000 + "}",
        '{"type": "read", "id": 1000000000000000000000000000000}',
        '{"type": "history", "before": NaN}',
        "\udcff".encode("utf-8", "surrogatepass").decode("latin-1"),
    ],
    ids=["nested", "huge-int", "nan", "bad-text"],
)
@pytest.mark.parametrize("path", ["/ws/chat/sockets/", "/ws/news/"])
def test_hostile_json_gets_malformed_and_the_socket_stays(live_server, accounts, path, payload):
    socket = RawWebSocket.open(
        live_server.port, path, origin=live_server.url, session=accounts["sock-member"]
    )
    try:
        socket.send_text(payload)
        probe = (
            {"type": "history", "before": PROBE_BEFORE}
            if "chat" in path
            else {"type": "news.recent"}
        )
        socket.send_text(json.dumps(probe))
        texts, code = socket.texts_until_close(timeout=2)
    finally:
        socket.abort()
    assert code is None, "the socket was closed"
    received = [json.loads(t) for t in texts]
    errors = [f for f in received if f["type"] == frames.ERROR]
    assert [e["code"] for e in errors] == [frames.MALFORMED]
    # The probe after it was answered: the socket still works.
    answers = [f for f in received if f.get("before") == PROBE_BEFORE or f["type"] == "news.recent"]
    assert len(answers) == (1 if "chat" in path else 2)  # news: the opening frame and the probe


def test_a_flood_is_refused_once_and_the_socket_recovers(live_server, accounts):
    socket = RawWebSocket.open(
        live_server.port, "/ws/news/", origin=live_server.url, session=accounts["sock-member"]
    )
    try:
        for _ in range(200):
            socket.send_text('{"type": "news.recent", "limit": 1}')
        texts, code = socket.texts_until_close(timeout=3)
        assert code is None
        received = [json.loads(t) for t in texts]
        limited = [f for f in received if f["type"] == frames.ERROR]
        # One error frame per run of refused frames, not one per frame.
        assert 1 <= len(limited) <= 3
        assert {f["code"] for f in limited} == {frames.RATE_LIMITED}
        answered = [f for f in received if f["type"] == "news.recent"]
        assert 1 < len(answered) < 200  # the opening frame plus the budget's burst
        time.sleep(1.0)  # the budget refills
        socket.send_text('{"type": "news.recent", "limit": 1}')
        texts, _ = socket.texts_until_close(timeout=2)
        assert [json.loads(t)["type"] for t in texts] == ["news.recent"]
    finally:
        socket.abort()


# -- Open sockets follow the account ------------------------------------------------------------


@pytest.fixture(scope="module")
def two_processes(live_server_factory, redis_server):
    """Two web processes sharing Redis (the change reaches sockets in every process)."""
    server = live_server_factory(redis_url=redis_server.url, SWITCHBOARD_APRS_REPLAY="")
    server.start_daphne()
    server.start_daphne()
    server.shell("from chat.models import Room\nRoom.objects.get_or_create(slug='accounts')\n")
    return server


def open_sockets(server, session: str, paths: list[str]) -> list[RawWebSocket]:
    sockets = []
    for index, path in enumerate(paths):
        port = server.ports[index % len(server.ports)]
        socket = RawWebSocket.open(port, path, origin=f"http://127.0.0.1:{port}", session=session)
        texts, code = socket.texts_until_close(timeout=1.0)
        assert code is None, f"{path} closed at once with {code}: {texts}"
        sockets.append(socket)
    return sockets


def close_codes(sockets: list[RawWebSocket], timeout: float = 10) -> list[int | None]:
    codes = []
    for socket in sockets:
        _, code = socket.texts_until_close(timeout=timeout)
        codes.append(code)
        socket.abort()
    return codes


CHAT = "/ws/chat/accounts/"
NOTIFICATIONS = "/ws/notifications/"
CONSOLE = "/ws/chat/admin/"


@pytest.mark.parametrize(
    ("change", "staff", "paths", "expected"),
    [
        ("u.is_active = False; u.save()", False, [CHAT, NOTIFICATIONS], [4401, 4401]),
        ("u.set_password('another-pass-1'); u.save()", False, [CHAT, NOTIFICATIONS], [4401, 4401]),
        ("u.delete()", False, [CHAT, NOTIFICATIONS], [4401, 4401]),
        ("u.is_staff = False; u.save()", True, [CONSOLE, CONSOLE], [4403, 4403]),
        ("u.set_password('another-pass-2'); u.save()", True, [CONSOLE, CHAT], [4403, 4401]),
    ],
    ids=["deactivated", "password", "deleted", "staff-removed", "staff-password"],
)
def test_account_changes_close_its_sockets_in_every_process(
    two_processes, change, staff, paths, expected
):
    name = f"acct-{abs(hash(change)) % 10**8}-{int(staff)}"
    session = two_processes.create_user(name, staff=staff)
    sockets = open_sockets(two_processes, session, paths)
    two_processes.shell(
        "from django.contrib.auth import get_user_model\n"
        f"u = get_user_model().objects.get(username={name!r})\n{change}\n"
    )
    assert close_codes(sockets) == expected


def test_losing_staff_keeps_the_chat_socket(two_processes):
    session = two_processes.create_user("acct-demoted", staff=True)
    chat, console = open_sockets(two_processes, session, [CHAT, CONSOLE])
    two_processes.shell(
        "from django.contrib.auth import get_user_model\n"
        "u = get_user_model().objects.get(username='acct-demoted')\n"
        "u.is_staff = False; u.save()\n"
    )
    assert close_codes([console]) == [frames.CLOSE_FORBIDDEN]
    chat.send_text(json.dumps({"type": "message", "text": "still a member"}))
    texts, code = chat.texts_until_close(timeout=2)
    chat.abort()
    assert code is None
    assert any(json.loads(t).get("text") == "still a member" for t in texts)


def logged_in_opener(
    server, username: str, password: str
) -> tuple[urllib.request.OpenerDirector, CookieJar]:
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(server.url + "/accounts/login/", timeout=10).read()
    token = next(c.value for c in jar if c.name == "csrftoken")
    body = urllib.parse.urlencode(
        {"login": username, "password": password, "csrfmiddlewaretoken": token}
    ).encode()
    request = urllib.request.Request(
        server.url + "/accounts/login/", data=body, headers={"Referer": server.url + "/"}
    )
    opener.open(request, timeout=10).read()
    return opener, jar


def test_logging_out_closes_that_sessions_sockets_only(two_processes):
    staying = two_processes.create_user("acct-leaver", password="leaver-pass-123")
    opener, jar = logged_in_opener(two_processes, "acct-leaver", "leaver-pass-123")
    leaving = next(c.value for c in jar if c.name == "sessionid")
    assert leaving != staying
    gone = open_sockets(two_processes, leaving, [CHAT, NOTIFICATIONS])
    kept = open_sockets(two_processes, staying, [CHAT])
    token = next(c.value for c in jar if c.name == "csrftoken")
    request = urllib.request.Request(
        two_processes.url + "/accounts/logout/",
        data=urllib.parse.urlencode({"csrfmiddlewaretoken": token}).encode(),
        headers={"Referer": two_processes.url + "/"},
    )
    opener.open(request, timeout=10).read()
    assert close_codes(gone) == [4401, 4401]
    _, code = kept[0].texts_until_close(timeout=1.5)
    kept[0].abort()
    assert code is None


def test_a_client_that_never_reads_is_closed_instead_of_growing_the_server(live_server_factory):
    """Ask for big history pages and never read them: the server stops queueing at its backlog
    limit and closes the socket with 4008 (realtime.backlog)."""
    server = live_server_factory(
        SWITCHBOARD_APRS_REPLAY="", SWITCHBOARD_WEBSOCKET_MAX_BACKLOG="131072"
    )
    server.start_daphne()
    session = server.create_user("slow-reader")
    server.shell(
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Room\n"
        "from chat.services import post_message\n"
        "room, _ = Room.objects.get_or_create(slug='big')\n"
        "author = get_user_model().objects.get(username='slow-reader')\n"
        "for n in range(50):\n"
        "    post_message(author, room, str(n) + 'x' * 3990)\n"
    )
    raw = socket_module.socket(socket_module.AF_INET, socket_module.SOCK_STREAM)
    raw.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", server.port))
    client = RawWebSocket.handshake(raw, server.port, "/ws/chat/big/", server.url, session)
    try:
        for _ in range(40):  # 40 pages of ~200 KB each: 8 MB if the server queued them all
            client.send_text(json.dumps({"type": "history", "before": 10**9}))
        deadline = time.monotonic() + 20
        while "with 4008" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert "with 4008" in server.log()
    finally:
        client.abort()
