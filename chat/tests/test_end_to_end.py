"""Two logged-in people chatting over real sockets to a real Daphne (`manage.py serve`)."""

import asyncio
import json

import pytest
import websockets

from chat import protocol

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def chat_server(live_server):
    live_server.shell(
        "from chat.models import Room\nRoom.objects.get_or_create(slug='e2e', title='End to end')"
    )
    return live_server


async def connect(server, session_key: str, query: str = ""):
    url = f"{server.ws_url}/ws/chat/e2e/" + (f"?{query}" if query else "")
    return await websockets.connect(
        url,
        origin=server.url,
        additional_headers={"Cookie": f"sessionid={session_key}"},
        open_timeout=10,
    )


async def next_frame(socket, frame_type: str, timeout: float = 5) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await socket.recv())
            if frame["type"] == frame_type:
                return frame


async def test_two_people_chat_and_a_reconnect_gets_exactly_what_was_missed(chat_server):
    ann_key = chat_server.create_user("e2e-ann")
    ben_key = chat_server.create_user("e2e-ben")
    ann = await connect(chat_server, ann_key)
    ben = await connect(chat_server, ben_key)
    await next_frame(ann, protocol.HISTORY)
    await next_frame(ben, protocol.HISTORY)

    await ann.send(json.dumps({"type": "message", "text": "hello ben", "client_id": "a1"}))
    echo = await next_frame(ann, protocol.MESSAGE)
    seen = await next_frame(ben, protocol.MESSAGE)
    assert echo == seen
    assert (seen["user"], seen["text"], seen["client_id"]) == ("e2e-ann", "hello ben", "a1")

    presence = await next_frame(ann, protocol.PRESENCE)
    while sorted(presence["users"]) != ["e2e-ann", "e2e-ben"]:
        presence = await next_frame(ann, protocol.PRESENCE)

    await ben.close()
    for text in ("while you were away", "and one more"):
        await ann.send(json.dumps({"type": "message", "text": text}))
        await next_frame(ann, protocol.MESSAGE)
    ben = await connect(chat_server, ben_key, f"after={seen['id']}")
    replay = await next_frame(ben, protocol.HISTORY)
    assert [m["text"] for m in replay["messages"]] == ["while you were away", "and one more"]

    await ben.send(json.dumps({"type": "message", "text": "back"}))
    assert (await next_frame(ann, protocol.MESSAGE))["text"] == "back"
    await ann.close()
    await ben.close()


async def test_oversized_frame_over_daphne_gets_too_large_then_close_4009(chat_server):
    key = chat_server.create_user("e2e-big")
    socket = await connect(chat_server, key)
    await next_frame(socket, protocol.HISTORY)
    await socket.send(json.dumps({"type": "message", "text": "x" * (protocol.MAX_FRAME_BYTES + 1)}))
    error = await next_frame(socket, protocol.ERROR)
    assert error["code"] == protocol.TOO_LARGE
    with pytest.raises(websockets.ConnectionClosed) as closed:
        await next_frame(socket, protocol.MESSAGE)
    assert closed.value.rcvd.code == protocol.CLOSE_TOO_LARGE


async def test_cross_origin_handshake_is_refused(chat_server):
    with pytest.raises(websockets.InvalidStatus):
        await websockets.connect(
            f"{chat_server.ws_url}/ws/chat/e2e/", origin="http://evil.example", open_timeout=10
        )
