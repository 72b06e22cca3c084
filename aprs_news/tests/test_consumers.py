"""APRSNewsConsumer (the "aprs" scope) and NewsConsumer (ws/news/), through communicators."""

import json
import time

import pytest
from django.contrib.auth.models import AnonymousUser

from aprs_news import protocol
from aprs_news.consumers import APRSNewsConsumer, NewsConsumer, packet_counts
from aprs_news.models import NewsItem
from aprs_news.tests.conftest import sample_packet
from realtime.db import database_sync_to_async
from realtime.generic import frames
from realtime.testing import ApplicationCommunicator, WebsocketCommunicator

pytestmark = pytest.mark.django_db(transaction=True)

APRS_SCOPE = {"type": "aprs", "server": "127.0.0.1:14580", "callsign": "N0CALL", "filter": "t/sm"}
CLUB = sample_packet("VE3QRP-5>APRS,WIDE2-1,qAR,VE3GTA::BLN3CLUB")
CLUB_AGAIN = sample_packet("VE3QRP-5>APRS,VE3RPT*,WIDE2,qAR,VE3KTW-10::BLN3CLUB")
POSITION = sample_packet("N5QZX-9>APAT51,WIDE1-1,WIDE2-1,qAR,KD5ABC-10:!")
WEATHER = sample_packet("CW4412>")
STATUS_LINE = sample_packet("JA1XQZ>APRS,TCPIP*,qAC,T2TOKYO:>")


async def start_feed() -> ApplicationCommunicator:
    feed = ApplicationCommunicator(APRSNewsConsumer.as_asgi(), dict(APRS_SCOPE))
    await feed.send_input({"type": protocol.EVENT_CONNECT})
    return feed


async def packet(feed: ApplicationCommunicator, raw, received: float | None = None) -> None:
    await feed.send_input(
        {"type": protocol.EVENT_PACKET, "raw": raw, "received": received or time.time()}
    )


async def listen(channel_layer) -> str:
    """A channel in the news group, as a ws/news/ socket would have."""
    channel = await channel_layer.new_channel()
    await channel_layer.group_add(protocol.NEWS_GROUP, channel)
    return channel


async def next_frame(channel_layer, channel: str) -> dict:
    message = await channel_layer.receive(channel)
    assert message["type"] == protocol.GROUP_MESSAGE_FRAME
    return json.loads(message["text"])


async def finish(feed: ApplicationCommunicator) -> None:
    await feed.send_input({"type": protocol.EVENT_DISCONNECT})
    await feed.wait(timeout=5)


async def items():
    return await database_sync_to_async(list)(NewsItem.objects.order_by("id"))


async def test_bulletin_packet_becomes_an_item_pushed_to_the_news_group(channel_layer):
    channel = await listen(channel_layer)
    feed = await start_feed()
    await packet(feed, CLUB, received=1795435200.5)
    frame = await next_frame(channel_layer, channel)
    assert frame["type"] == protocol.FRAME_ITEM
    item = frame["item"]
    assert (item["kind"], item["source"], item["addressee"], item["group"]) == (
        "bulletin",
        "VE3QRP-5",
        "BLN3CLUB",
        "CLUB",
    )
    assert item["raw"] == CLUB
    assert item["received"] == "2026-11-23T12:00:00.500000+00:00"
    await finish(feed)
    [stored] = await items()
    assert stored.pk == item["id"]


async def test_resent_bulletin_is_pushed_as_seen_again_not_as_new(channel_layer):
    channel = await listen(channel_layer)
    feed = await start_feed()
    await packet(feed, CLUB)
    first = await next_frame(channel_layer, channel)
    await packet(feed, CLUB_AGAIN)
    again = await next_frame(channel_layer, channel)
    assert again["type"] == protocol.FRAME_SEEN
    assert again["id"] == first["item"]["id"]
    assert again["seen_count"] == 2
    await finish(feed)
    assert len(await items()) == 1


async def test_garbage_and_non_news_are_skipped_and_the_feed_goes_on(channel_layer):
    channel = await listen(channel_layer)
    feed = await start_feed()
    before = packet_counts.copy()
    for raw in ["this is not an aprs packet", b"\xff\xfe\x00garbage", None, POSITION, "", 42]:
        await packet(feed, raw)
    await packet(feed, WEATHER)
    frame = await next_frame(channel_layer, channel)
    assert frame["item"]["kind"] == "weather"
    await finish(feed)
    assert packet_counts["unparseable"] - before["unparseable"] == 5
    assert packet_counts["ignored"] - before["ignored"] == 1
    assert [item.kind for item in await items()] == ["weather"]


async def test_feed_consumer_ends_on_disconnect(channel_layer):
    feed = await start_feed()
    await packet(feed, WEATHER)
    await finish(feed)  # raises if the consumer is still running


# --- ws/news/ ----------------------------------------------------------------------------------


def as_anonymous(application):
    async def app(scope, receive, send):
        return await application(dict(scope, user=AnonymousUser()), receive, send)

    return app


async def open_news_socket() -> tuple[WebsocketCommunicator, dict]:
    socket = WebsocketCommunicator(as_anonymous(NewsConsumer.as_asgi()), "/ws/news/")
    connected, _ = await socket.connect()
    assert connected
    return socket, await socket.receive_json_from()


async def record_sample(*raws: str) -> None:
    feed = await start_feed()
    for raw in raws:
        await packet(feed, raw)
    await finish(feed)


async def test_news_socket_sends_recent_items_on_connect(channel_layer):
    await record_sample(CLUB, WEATHER)
    socket, recent = await open_news_socket()
    assert recent["type"] == protocol.FRAME_RECENT
    assert [item["kind"] for item in recent["items"]] == ["weather", "bulletin"]
    await socket.disconnect()


async def test_news_socket_relays_live_items(channel_layer):
    socket, recent = await open_news_socket()
    assert recent["items"] == []
    await record_sample(CLUB)
    frame = await socket.receive_json_from(timeout=5)
    assert frame["type"] == protocol.FRAME_ITEM
    assert frame["item"]["text"] == "Club meeting moved to Thursday 19:30 at the library"
    await socket.disconnect()


async def test_news_recent_request_filters_by_kind_prefix_and_group(channel_layer):
    await record_sample(CLUB, WEATHER, sample_packet("::BLN1WX   :"))
    socket, _ = await open_news_socket()
    await socket.send_json_to({"type": protocol.FRAME_RECENT, "kind": "weather"})
    assert [i["source"] for i in (await socket.receive_json_from())["items"]] == ["CW4412"]
    await socket.send_json_to({"type": protocol.FRAME_RECENT, "prefix": "ve3"})
    assert [i["source"] for i in (await socket.receive_json_from())["items"]] == ["VE3QRP-5"]
    await socket.send_json_to({"type": protocol.FRAME_RECENT, "group": "wx", "limit": 1})
    assert [i["addressee"] for i in (await socket.receive_json_from())["items"]] == ["BLN1WX"]
    await socket.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("not json", frames.MALFORMED),
        ("[1, 2]", frames.MALFORMED),
        ('{"no": "type"}', frames.MALFORMED),
        ("[" * 1500 + "]" * 1500, frames.MALFORMED),
        ('{"type": "news.subscribe"}', frames.UNKNOWN_TYPE),
        ('{"type": "news.recent", "kind": "gossip"}', protocol.ERROR_BAD_PARAMETER),
        ('{"type": "news.recent", "prefix": "<script>"}', protocol.ERROR_BAD_PARAMETER),
        ('{"type": "news.recent", "limit": -1}', protocol.ERROR_BAD_PARAMETER),
    ],
)
async def test_bad_frame_gets_an_error_and_the_socket_stays_open(channel_layer, frame, code):
    socket, _ = await open_news_socket()
    await socket.send_to(text_data=frame)
    error = await socket.receive_json_from()
    assert (error["type"], error["code"]) == (frames.ERROR, code)
    assert error["detail"]
    await socket.send_json_to({"type": protocol.FRAME_RECENT})
    assert (await socket.receive_json_from())["type"] == protocol.FRAME_RECENT
    await socket.disconnect()


async def test_oversized_frame_gets_an_error_and_close_4009(channel_layer):
    socket, _ = await open_news_socket()
    await socket.send_to(text_data="x" * (protocol.MAX_CLIENT_FRAME_BYTES + 1))
    error = await socket.receive_json_from()
    assert error["code"] == frames.TOO_LARGE
    closed = await socket.receive_output()
    assert closed == {"type": "websocket.close", "code": frames.CLOSE_TOO_LARGE}


async def test_root_application_routes_the_aprs_scope_to_the_news_consumer(channel_layer):
    from config.asgi import application

    channel = await listen(channel_layer)
    feed = ApplicationCommunicator(application, dict(APRS_SCOPE))
    await feed.send_input({"type": protocol.EVENT_CONNECT})
    await packet(feed, STATUS_LINE)
    frame = await next_frame(channel_layer, channel)
    assert frame["item"]["source"] == "JA1XQZ"
    await finish(feed)
