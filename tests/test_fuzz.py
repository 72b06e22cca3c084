"""Property-based tests (hypothesis): random frames at the chat and notification consumers, random
URLs at the routers, random APRS lines at the APRS consumer. Whatever arrives, nothing raises; every
bad frame is answered with an error frame or a close code from the app's protocol module, and the
connection still works afterwards.

Consumers run under realtime.testing communicators with the in-memory layer; the user is put in
the scope as the auth middleware would."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aprs_news.consumers import APRSNewsConsumer
from aprs_news.models import NewsItem
from chat import protocol as chat_protocol
from notifications import protocol as notification_protocol
from notifications.consumers import NotificationConsumer
from notifications.models import Notification
from realtime.db import database_sync_to_async
from realtime.generic import frames as frames_protocol
from realtime.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def typed_frames(types: list[str]) -> st.SearchStrategy[dict]:
    """Objects with a protocol `type` and random other fields."""
    fields = st.dictionaries(
        st.sampled_from(["id", "ids", "text", "client_id", "before", "room", "user", "minutes"])
        | st.text(max_size=8),
        JSON_VALUES,
        max_size=4,
    )
    return st.builds(lambda kind, rest: {**rest, "type": kind}, st.sampled_from(types), fields)


def bad_frames(known_types: set[str]) -> st.SearchStrategy[tuple[str, str | bytes]]:
    """Frames no protocol accepts: ("text" | "bytes", payload)."""
    not_json = st.text(max_size=80).filter(lambda s: not _is_json(s))
    not_object = JSON_VALUES.filter(lambda v: not isinstance(v, dict)).map(json.dumps)
    no_type = st.dictionaries(st.text(max_size=8).filter(lambda k: k != "type"), JSON_VALUES).map(
        json.dumps
    )
    wrong_type = st.builds(
        lambda kind, rest: json.dumps({**rest, "type": kind}),
        JSON_VALUES.filter(lambda v: not (isinstance(v, str) and v in known_types)),
        st.dictionaries(st.text(max_size=8), JSON_SCALARS, max_size=3),
    )
    return st.one_of(
        st.tuples(st.just("text"), not_json | not_object | no_type | wrong_type),
        st.tuples(st.just("bytes"), st.binary(max_size=64)),
    )


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


async def send_frame(communicator: WebsocketCommunicator, kind: str, payload: str | bytes) -> None:
    if kind == "text":
        await communicator.send_to(text_data=payload)
    else:
        await communicator.send_to(bytes_data=payload)


async def drain(communicator: WebsocketCommunicator, quiet: float = 0.03) -> list[dict]:
    """Everything the application sends until it has been quiet for `quiet` seconds."""
    events = []
    while not await communicator.receive_nothing(timeout=quiet):
        events.append(await communicator.receive_output())
    return events


async def next_event(communicator: WebsocketCommunicator, timeout: float = 2.0) -> dict:
    return await communicator.receive_output(timeout)


async def output_or_exit(communicator: ApplicationCommunicator, timeout: float = 3.0) -> dict:
    """The application's next event; if it exits first, what it raised (at once, where asgiref's
    receive_output would first wait out its whole timeout)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not communicator.output_queue.empty():
            return communicator.output_queue.get_nowait()
        if communicator.future.done():
            communicator.future.result()  # raises what the application raised
            raise AssertionError("the application returned without a word")
        await asyncio.sleep(0.002)
    raise AssertionError(f"no answer within {timeout}s")


def frame_of(event: dict) -> dict:
    assert event["type"] == "websocket.send", event
    return json.loads(event["text"])


def as_user(application, user):
    async def app(scope, receive, send):
        return await application(dict(scope, user=user), receive, send)

    return app


@pytest.fixture
def member(db):
    return get_user_model().objects.create_user("fuzz-member", password="pass-word-123")


# -- notifications ---------------------------------------------------------------------------------

NOTIFICATION_ERRORS = {
    frames_protocol.MALFORMED,
    frames_protocol.UNKNOWN_TYPE,
    frames_protocol.INVALID,
    frames_protocol.TOO_LARGE,
}
NOTIFICATION_SERVER_TYPES = {
    notification_protocol.UNREAD,
    notification_protocol.NOTIFICATION,
    notification_protocol.ERROR,
}
NOTIFICATION_CLIENT_TYPES = [notification_protocol.READ, notification_protocol.READ_ALL]


async def notification_socket(user) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(
        as_user(NotificationConsumer.as_asgi(), user), "/ws/notifications/"
    )
    assert (await communicator.connect())[0]
    assert frame_of(await next_event(communicator))["type"] == notification_protocol.UNREAD
    return communicator


async def assert_notification_socket_alive(communicator: WebsocketCommunicator) -> None:
    await communicator.send_json_to({"type": notification_protocol.READ_ALL})
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        frame = frame_of(await next_event(communicator))
        if frame["type"] == notification_protocol.UNREAD:
            assert frame["count"] == 0
            return
    raise AssertionError("the socket stopped answering after the fuzzed frames")


@FUZZ
@given(frames=st.lists(bad_frames(set(NOTIFICATION_CLIENT_TYPES)), min_size=1, max_size=4))
async def test_notification_stream_answers_every_bad_frame_with_an_error(
    channel_layer, member, frames
):
    communicator = await notification_socket(member)
    for kind, payload in frames:
        await send_frame(communicator, kind, payload)
        frame = frame_of(await next_event(communicator))
        assert frame["type"] == notification_protocol.ERROR, (payload, frame)
        assert frame["code"] in NOTIFICATION_ERRORS, frame
    await assert_notification_socket_alive(communicator)
    await communicator.disconnect()


@FUZZ
@given(frames=st.lists(typed_frames(NOTIFICATION_CLIENT_TYPES), min_size=1, max_size=4))
async def test_notification_stream_survives_random_fields_on_known_frames(
    channel_layer, member, frames
):
    communicator = await notification_socket(member)
    for frame in frames:
        await communicator.send_json_to(frame)
        for event in await drain(communicator):
            answer = frame_of(event)
            assert answer["type"] in NOTIFICATION_SERVER_TYPES, answer
            if answer["type"] == notification_protocol.ERROR:
                assert answer["code"] in NOTIFICATION_ERRORS, answer
    await assert_notification_socket_alive(communicator)
    await communicator.disconnect()


async def test_notification_stream_closes_4009_on_an_oversized_frame(channel_layer, member):
    communicator = await notification_socket(member)
    await communicator.send_to(text_data="x" * (notification_protocol.MAX_FRAME_BYTES + 1))
    error = frame_of(await next_event(communicator))
    assert error["code"] == frames_protocol.TOO_LARGE
    close = await next_event(communicator)
    assert close == {"type": "websocket.close", "code": frames_protocol.CLOSE_TOO_LARGE}


# -- chat ----------------------------------------------------------------------------------------

CHAT_ERRORS = {
    chat_protocol.MALFORMED,
    chat_protocol.UNKNOWN_TYPE,
    chat_protocol.INVALID,
    chat_protocol.TOO_LONG,
    chat_protocol.EMPTY,
    chat_protocol.RATE_LIMITED,
    chat_protocol.LOGIN_REQUIRED,
    chat_protocol.MUTED,
    chat_protocol.TOO_LARGE,
    chat_protocol.NOT_FOUND,
    chat_protocol.NOT_ALLOWED,
}
CHAT_SERVER_TYPES = {
    chat_protocol.MESSAGE,
    chat_protocol.TYPING,
    chat_protocol.HISTORY,
    chat_protocol.PRESENCE,
    chat_protocol.EDITED,
    chat_protocol.DELETED,
    chat_protocol.ERROR,
    chat_protocol.AUDIT,
    chat_protocol.STATS,
}
FUZZ_ROOM = "fuzz-room"
# Frames the room sends on its own schedule (presence is coalesced and sent a moment after a join).
PASSING_FRAMES = {chat_protocol.PRESENCE, chat_protocol.TYPING}


@pytest.fixture
def chat_room(db):
    from chat.models import Room

    return Room.objects.get_or_create(slug=FUZZ_ROOM, defaults={"title": "Fuzz"})[0]


@pytest.fixture
def moderator(db):
    return get_user_model().objects.create_user(
        "fuzz-moderator", password="pass-word-123", is_staff=True, is_superuser=True
    )


async def chat_socket(user, path: str) -> WebsocketCommunicator:
    from chat.consumers import AdminChatConsumer, PublicChatConsumer

    consumer = AdminChatConsumer if path == "/ws/chat/admin/" else PublicChatConsumer
    kwargs = {} if consumer is AdminChatConsumer else {"room": FUZZ_ROOM}
    application = as_user(consumer.as_asgi(), user)

    async def routed(scope, receive, send):
        return await application(
            dict(scope, url_route={"args": (), "kwargs": kwargs}), receive, send
        )

    communicator = WebsocketCommunicator(routed, path)
    assert (await communicator.connect())[0]
    # The opening frames: history first (it may take a while on PostgreSQL), then presence and
    # the console's snapshot.
    while frame_of(await next_event(communicator, timeout=5))["type"] != chat_protocol.HISTORY:
        pass
    await drain(communicator, quiet=0.1)
    return communicator


def assert_chat_answers(events: list[dict]) -> None:
    for event in events:
        if event["type"] == "websocket.close":
            assert event.get("code") == chat_protocol.CLOSE_TOO_LARGE, event
            continue
        frame = frame_of(event)
        assert frame["type"] in CHAT_SERVER_TYPES, frame
        if frame["type"] == chat_protocol.ERROR:
            assert frame["code"] in CHAT_ERRORS, frame


async def assert_chat_socket_alive(communicator: WebsocketCommunicator) -> None:
    await communicator.send_json_to({"type": chat_protocol.HISTORY, "before": 1})
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        frame = frame_of(await next_event(communicator))
        if frame["type"] == chat_protocol.HISTORY:
            return
    raise AssertionError("the room socket stopped answering after the fuzzed frames")


@FUZZ
@given(frames=st.lists(bad_frames(set(chat_protocol.ROOM_CLIENT_TYPES)), min_size=1, max_size=4))
async def test_chat_room_answers_every_bad_frame_with_an_error(
    channel_layer, chat_room, member, frames
):
    communicator = await chat_socket(member, f"/ws/chat/{FUZZ_ROOM}/")
    for kind, payload in frames:
        await send_frame(communicator, kind, payload)
        frame = frame_of(await next_event(communicator))
        while frame["type"] in PASSING_FRAMES:  # a presence update may come in between
            frame = frame_of(await next_event(communicator))
        assert frame["type"] == chat_protocol.ERROR, (payload, frame)
        assert frame["code"] in CHAT_ERRORS, frame
    await assert_chat_socket_alive(communicator)
    await communicator.disconnect()


@FUZZ
@given(frames=st.lists(typed_frames(sorted(chat_protocol.ROOM_CLIENT_TYPES)), max_size=4))
async def test_chat_room_survives_random_fields_on_known_frames(
    channel_layer, chat_room, member, frames
):
    communicator = await chat_socket(member, f"/ws/chat/{FUZZ_ROOM}/")
    for frame in frames:
        await communicator.send_json_to(frame)
        assert_chat_answers(await drain(communicator))
    await assert_chat_socket_alive(communicator)
    await communicator.disconnect()


@FUZZ
@given(frames=st.lists(typed_frames(sorted(chat_protocol.CONSOLE_CLIENT_TYPES)), max_size=4))
async def test_staff_console_survives_random_fields_on_known_frames(
    channel_layer, chat_room, moderator, frames
):
    communicator = await chat_socket(moderator, "/ws/chat/admin/")
    for frame in frames:
        await communicator.send_json_to(frame)
        assert_chat_answers(await drain(communicator))
    # A valid random action (announce, mute) answers after database work, possibly after the
    # drain gave up: read on until the answer to this frame, checking everything on the way.
    await communicator.send_to(text_data="not json")
    while True:
        event = await next_event(communicator, timeout=5)
        assert_chat_answers([event])
        frame = frame_of(event)
        if frame["type"] == chat_protocol.ERROR and frame["code"] == chat_protocol.MALFORMED:
            break
    await communicator.disconnect()


async def test_chat_room_closes_4009_on_an_oversized_frame(channel_layer, chat_room, member):
    communicator = await chat_socket(member, f"/ws/chat/{FUZZ_ROOM}/")
    await communicator.send_to(text_data="x" * (chat_protocol.MAX_FRAME_BYTES + 1))
    frame = frame_of(await next_event(communicator))
    while frame["type"] in PASSING_FRAMES:
        frame = frame_of(await next_event(communicator))
    assert frame["code"] == chat_protocol.TOO_LARGE
    close = await next_event(communicator)
    assert close == {"type": "websocket.close", "code": chat_protocol.CLOSE_TOO_LARGE}


# -- routers ---------------------------------------------------------------------------------------

SEGMENT = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/?#"), min_size=0, max_size=12
)
RANDOM_PATHS = st.one_of(
    st.text(max_size=60).map(lambda s: "/" + s),
    st.lists(SEGMENT, max_size=5).map(lambda parts: "/" + "/".join(parts)),
    st.builds(
        lambda prefix, rest: prefix + rest,
        st.sampled_from(
            ["/ws/", "/ws/chat/", "/ws/chat/admin/", "/ws/notifications/", "/ws/news/"]
        ),
        st.text(max_size=20),
    ),
)


def client_path(path: str) -> str:
    """The path as a client puts it on the wire: non-ASCII and spaces percent-encoded."""
    return quote(path, safe="/?=&%:@!$'()*+,;~")


def websocket_router():
    import aprs_news.routing
    import chat.routing
    import notifications.routing
    from realtime.routing import URLRouter

    return URLRouter(
        [
            *chat.routing.websocket_urlpatterns,
            *notifications.routing.websocket_urlpatterns,
            *aprs_news.routing.websocket_urlpatterns,
        ]
    )


@FUZZ
@given(path=RANDOM_PATHS)
async def test_websocket_router_routes_or_refuses_any_path(channel_layer, path):
    communicator = WebsocketCommunicator(
        as_user(websocket_router(), AnonymousUser()), client_path(path)
    )
    await communicator.send_input({"type": "websocket.connect"})
    try:
        first = await output_or_exit(communicator)
    except ValueError as error:
        assert "No route found" in str(error)
        return
    if first["type"] == "websocket.accept":
        for event in await drain(communicator):
            if event["type"] == "websocket.close":
                assert event.get("code", 1000) in {
                    1000,
                    chat_protocol.CLOSE_LOGIN_REQUIRED,
                    chat_protocol.CLOSE_FORBIDDEN,
                    chat_protocol.CLOSE_NO_SUCH_ROOM,
                    notification_protocol.CLOSE_NOT_AUTHENTICATED,
                }, (path, event)
                return
        await communicator.disconnect()


@FUZZ
@given(path=RANDOM_PATHS, method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"]))
async def test_http_router_never_answers_with_a_server_error(channel_layer, path, method):
    from config.asgi import application

    communicator = HttpCommunicator(
        application, method, client_path(path), headers=[("host", "127.0.0.1"), ("cookie", "")]
    )
    response = await communicator.get_response(timeout=5)
    assert response["status"] < 500, (method, path, response["status"])


# -- APRS ------------------------------------------------------------------------------------------

APRS_LIKE = st.builds(
    lambda source, path, body: f"{source}>{path}:{body}",
    st.text(max_size=12),
    st.text(max_size=20),
    st.text(max_size=80),
)
BULLETIN = "N0FUZ>APRS,TCPIP*,qAC,T2TEST::BLN9FUZZ :Fuzzing survived {n}"


@FUZZ
@given(lines=st.lists(st.text(max_size=120) | APRS_LIKE | st.binary(max_size=80), max_size=6))
async def test_aprs_consumer_survives_random_lines_and_still_records_news(channel_layer, lines):
    scope = {"type": "aprs", "server": "fuzz:14580", "callsign": "N0CALL", "filter": ""}
    communicator = ApplicationCommunicator(APRSNewsConsumer.as_asgi(), scope)
    await communicator.send_input({"type": "aprs.connect"})
    for line in lines:
        await communicator.send_input({"type": "aprs.packet", "raw": line, "received": time.time()})
    marker = f"{time.monotonic_ns()}"
    await communicator.send_input(
        {"type": "aprs.packet", "raw": BULLETIN.format(n=marker), "received": time.time()}
    )
    await communicator.send_input({"type": "aprs.disconnect"})
    await communicator.wait(timeout=5)  # re-raises anything the consumer died of
    exists = database_sync_to_async(NewsItem.objects.filter(text__contains=marker).exists)
    assert await exists(), "a valid bulletin after random lines was not recorded"


# -- valid-shaped frames: real ids, real text, answers predicted, effects read from the database --

MISSING_ID = 2**31 - 1
ID_REFS = st.sampled_from(["own", "other", "missing"])
FUZZ_TEXT = st.text(max_size=40) | st.sampled_from(
    ["hello", "hi @fuzz-moderator", "   ", "x" * (chat_protocol.MAX_TEXT_LENGTH + 1), "a\x00b"]
)
VALID_SHAPED_ROOM_FRAMES = st.one_of(
    st.builds(
        lambda text, client_id: {
            "type": chat_protocol.MESSAGE,
            "text": text,
            "client_id": client_id,
        },
        FUZZ_TEXT,
        st.text(max_size=8),
    ),
    st.builds(
        lambda ref, text: {"type": chat_protocol.EDIT, "id": ref, "text": text}, ID_REFS, FUZZ_TEXT
    ),
    st.builds(lambda ref: {"type": chat_protocol.DELETE, "id": ref}, ID_REFS),
    st.builds(lambda ref: {"type": chat_protocol.READ, "id": ref}, ID_REFS),
    st.builds(lambda ref: {"type": chat_protocol.HISTORY, "before": ref}, ID_REFS),
    st.just({"type": chat_protocol.TYPING}),
)
VALID_SHAPED_CONSOLE_FRAMES = st.one_of(
    st.builds(lambda text: {"type": chat_protocol.ANNOUNCE, "text": text}, FUZZ_TEXT),
    st.builds(
        lambda user, room, minutes: {
            "type": chat_protocol.MUTE, "user": user, "room": room, "minutes": minutes
        },
        st.sampled_from(["fuzz-member", "nobody-here", "nul\x00name"]),
        st.sampled_from([FUZZ_ROOM, None, "no-such-room"]),
        st.integers(min_value=-2, max_value=chat_protocol.MAX_MUTE_MINUTES + 2),
    ),
    st.builds(lambda ref: {"type": chat_protocol.DELETE, "id": ref}, ID_REFS),
)  # fmt: skip


def text_problem(text: str) -> str | None:
    """The error code chat gives for this message text, None when it is a valid one."""
    if "\x00" in text:
        return chat_protocol.INVALID
    if not text.strip():
        return chat_protocol.EMPTY
    if len(text) > chat_protocol.MAX_TEXT_LENGTH:
        return chat_protocol.TOO_LONG
    return None


@pytest.fixture(autouse=True)
def no_error_logs(caplog):
    """Fails any fuzz test during which anything logged an ERROR (a traceback the client never
    saw, a failure answered as if it were the client's fault)."""
    caplog.set_level(logging.ERROR)
    yield
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors][:5]


@pytest.fixture
def generous_rate_limit(settings):
    from chat import ratelimit

    settings.CHAT_RATE_LIMIT = "100000/1"
    ratelimit._limiter = None
    yield
    ratelimit._limiter = None


def _message_ids(user, room_slug: str = FUZZ_ROOM) -> dict[str, int]:
    """The ids the refs stand for now: `own` the user's latest visible message (or a missing
    id), `other` the latest visible message by someone else."""
    from chat.models import Message

    visible = Message.objects.filter(room__slug=room_slug, deleted__isnull=True).order_by("-id")
    own = visible.filter(user=user).values_list("id", flat=True).first()
    other = visible.exclude(user=user).values_list("id", flat=True).first()
    return {"own": own or MISSING_ID, "other": other or MISSING_ID, "missing": MISSING_ID}


async def answers_until_marker(communicator: WebsocketCommunicator) -> list[dict]:
    """Every frame the socket sends until the answer to a marker (a non-JSON frame): all the
    answers to what was sent before it, each one checked."""
    await communicator.send_to(text_data="marker, not json")
    frames = []
    while True:
        event = await next_event(communicator, timeout=5)
        assert_chat_answers([event])
        frame = frame_of(event)
        assert not (
            frame["type"] == chat_protocol.ERROR and frame["code"] == chat_protocol.SERVER_ERROR
        ), frame
        if frame["type"] == chat_protocol.ERROR and frame["code"] == chat_protocol.MALFORMED:
            return frames
        frames.append(frame)


async def wait_for_answer(communicator: WebsocketCommunicator, answers: list[dict], wanted) -> dict:
    """The first answer `wanted` accepts: among `answers`, or (a room event comes over the layer
    and may follow the marker's direct answer) read next, each frame on the way checked."""
    for answer in answers:
        if wanted(answer):
            return answer
    while True:
        event = await next_event(communicator, timeout=5)
        assert_chat_answers([event])
        frame = frame_of(event)
        assert frame["type"] != chat_protocol.ERROR, frame
        answers.append(frame)
        if wanted(frame):
            return frame


@pytest.fixture
def others_message(chat_room, moderator):
    from chat.services import post_message

    return post_message(moderator, chat_room, "someone else's words").frame["id"]


@FUZZ
@given(frames=st.lists(VALID_SHAPED_ROOM_FRAMES, min_size=1, max_size=5))
async def test_chat_room_carries_out_valid_shaped_frames_and_refuses_the_rest(
    channel_layer, chat_room, member, others_message, generous_rate_limit, frames
):
    from chat.models import Message

    communicator = await chat_socket(member, f"/ws/chat/{FUZZ_ROOM}/")
    for frame in frames:
        refs = await database_sync_to_async(_message_ids)(member)
        for field in ("id", "before"):
            if field in frame:
                frame = {**frame, field: refs[frame[field]]}
        # A client_id this member already used here is a retry: the stored message answers.
        stored = None
        # (A client_id with a NUL is refused before any lookup; PostgreSQL cannot even compare it.)
        if (
            frame["type"] == chat_protocol.MESSAGE
            and frame["client_id"]
            and "\x00" not in frame["client_id"]
        ):
            stored = await database_sync_to_async(
                Message.objects.filter(user=member, client_id=frame["client_id"]).first
            )()
        await communicator.send_json_to(frame)
        answers = await answers_until_marker(communicator)
        errors = [a["code"] for a in answers if a["type"] == chat_protocol.ERROR]
        kind, target = frame["type"], frame.get("id")
        row = None
        if target is not None:
            row = await database_sync_to_async(Message.objects.filter(pk=target).first)()
        if kind == chat_protocol.MESSAGE:
            problem = text_problem(frame["text"]) or (
                chat_protocol.INVALID if "\x00" in frame["client_id"] else None
            )
            if problem:
                assert errors == [problem], (frame, answers)
                continue
            assert errors == [], (frame, answers)
            expected_text = frame["text"] if stored is None else stored.text
            echo = await wait_for_answer(
                communicator,
                answers,
                lambda a, f=frame, t=expected_text: (
                    a["type"] == chat_protocol.MESSAGE
                    and a["client_id"] == f["client_id"]
                    and a["text"] == t
                ),
            )
            saved = await database_sync_to_async(Message.objects.get)(pk=echo["id"])
            assert (saved.text, saved.user_id) == (expected_text, member.pk)
            if stored is not None:
                assert echo["id"] == stored.pk
        elif kind == chat_protocol.EDIT:
            problem = text_problem(frame["text"])
            if problem is None and target == MISSING_ID:
                problem = chat_protocol.NOT_FOUND
            elif problem is None and row.user_id != member.pk:
                problem = chat_protocol.NOT_ALLOWED
            assert errors == ([problem] if problem else []), (frame, answers)
            if problem is None:
                assert row.text == frame["text"] and row.edited is not None
                await wait_for_answer(
                    communicator,
                    answers,
                    lambda a, t=target: a["type"] == chat_protocol.EDITED and a["id"] == t,
                )
        elif kind == chat_protocol.DELETE:
            if target == MISSING_ID:
                assert errors == [chat_protocol.NOT_FOUND], (frame, answers)
            elif row.user_id != member.pk:
                assert errors == [chat_protocol.NOT_ALLOWED], (frame, answers)
                assert row.deleted is None
            else:
                assert errors == [] and row.deleted is not None, (frame, answers)
                await wait_for_answer(
                    communicator,
                    answers,
                    lambda a, t=target: a["type"] == chat_protocol.DELETED and a["id"] == t,
                )
        elif kind == chat_protocol.HISTORY:
            assert errors == [] and any(a["type"] == chat_protocol.HISTORY for a in answers)
        else:  # read, typing: carried out without an answer of their own
            assert errors == [], (frame, answers)
    await communicator.disconnect()


@FUZZ
@given(frames=st.lists(VALID_SHAPED_CONSOLE_FRAMES, min_size=1, max_size=4))
async def test_staff_console_carries_out_valid_shaped_actions_and_refuses_the_rest(
    channel_layer, chat_room, moderator, member, generous_rate_limit, frames
):
    from chat.models import Message, Mute
    from chat.services import post_message

    def members_message() -> None:
        Mute.objects.filter(user=member).delete()  # a mute of an earlier frame would refuse it
        post_message(member, chat_room, "a member's words")

    communicator = await chat_socket(moderator, "/ws/chat/admin/")
    for frame in frames:
        await database_sync_to_async(members_message)()
        if frame["type"] == chat_protocol.DELETE:
            refs = await database_sync_to_async(_message_ids)(moderator)
            frame = {**frame, "id": refs[frame["id"]]}
        mutes_before = await database_sync_to_async(Mute.objects.count)()
        await communicator.send_json_to(frame)
        answers = await answers_until_marker(communicator)
        errors = [a["code"] for a in answers if a["type"] == chat_protocol.ERROR]
        if frame["type"] == chat_protocol.ANNOUNCE:
            problem = text_problem(frame["text"])
            assert errors == ([problem] if problem else []), (frame, answers)
            if problem is None:
                announced = database_sync_to_async(
                    Message.objects.filter(
                        kind=chat_protocol.KIND_ANNOUNCEMENT, text=frame["text"]
                    ).exists
                )
                assert await announced()
        elif frame["type"] == chat_protocol.MUTE:
            if (
                "\x00" in frame["user"]
                or not 1 <= frame["minutes"] <= chat_protocol.MAX_MUTE_MINUTES
            ):
                problem = chat_protocol.INVALID
            elif frame["user"] != member.username or frame["room"] == "no-such-room":
                problem = chat_protocol.NOT_FOUND
            else:
                problem = None
            assert errors == ([problem] if problem else []), (frame, answers)
            mutes = await database_sync_to_async(Mute.objects.count)()
            assert mutes == mutes_before + (problem is None)
        else:
            if frame["id"] == MISSING_ID:
                assert errors == [chat_protocol.NOT_FOUND], (frame, answers)
            else:
                assert errors == [], (frame, answers)
                row = await database_sync_to_async(Message.objects.get)(pk=frame["id"])
                assert row.deleted is not None
    await communicator.disconnect()


@FUZZ
@given(
    picks=st.lists(
        st.lists(st.integers(min_value=0, max_value=5), max_size=4) | st.none(), max_size=4
    )
)
async def test_notification_stream_marks_real_ids_read_and_reports_the_true_count(
    channel_layer, member, moderator, picks
):
    """Reads of the member's real notification ids (mixed with a stranger's and missing ones),
    or read_all (None): each is answered with the unread count the database holds."""
    from notifications import notify

    def seed() -> list[int]:
        mine = [n.pk for n in notify(member, verb="fuzz", text="for the member")]
        mine += [n.pk for n in notify(member, verb="fuzz", text="another")]
        theirs = [n.pk for n in notify(moderator, verb="fuzz", text="for someone else")]
        return [*mine, *theirs, MISSING_ID]

    ids = await database_sync_to_async(seed)()
    communicator = await notification_socket(member)
    unread = database_sync_to_async(
        lambda: Notification.objects.filter(recipient=member, read=False).count()
    )
    for pick in picks:
        if pick is None:
            frame = {"type": notification_protocol.READ_ALL}
        else:
            frame = {"type": notification_protocol.READ, "ids": [ids[i % len(ids)] for i in pick]}
        await communicator.send_json_to(frame)
        answer = frame_of(await next_event(communicator))
        assert answer == {"type": notification_protocol.UNREAD, "count": await unread()}, frame
    others_unread = database_sync_to_async(
        lambda: Notification.objects.filter(recipient=moderator, read=False).count()
    )
    assert await others_unread() > 0  # a stranger's ids never mark their notifications
    await communicator.disconnect()
