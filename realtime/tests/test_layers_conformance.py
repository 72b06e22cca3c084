"""The channel layer contract, run against every backend Switchboard supports.

One parametrized fixture builds the layer under test: the in-memory layer, our Redis layer, and
channels_redis's core and pub/sub layers (the reference and the drop-in for existing users), the
Redis ones on the private ``redis_server`` of the root conftest; ours also sharded over three
independent servers (``redis_shards``) and on a 3-master Redis Cluster (``redis_cluster``). Behaviour a backend does not
offer is listed in ``CAPABILITIES``; tests that need it are skipped with the reason written there,
so every gap is visible in the test report rather than silently passing.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from channels.exceptions import ChannelFull as ChannelsChannelFull

from realtime.exceptions import ChannelFull
from realtime.tests.helpers import nothing_arrives, receive

BACKENDS = {
    "memory": "realtime.layers.memory.InMemoryChannelLayer",
    "redis": "realtime.layers.redis.RedisChannelLayer",
    "redis_shards": "realtime.layers.redis.RedisChannelLayer",
    "redis_cluster": "realtime.layers.redis.RedisChannelLayer",
    "channels_redis": "channels_redis.core.RedisChannelLayer",
    "channels_redis_pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
}

# Contract features, and why a backend lacks one.
PUBSUB_GAPS = {
    "send_many": "channels_redis has no group_send_many (chat sends to each group in turn)",
    "durable": "the pub/sub layer only delivers to channels already being listened to",
    "validation": "the pub/sub layer does not check names or messages",
    "local_names": "the pub/sub layer's new_channel() names have no '!' ('asgispecific.<uuid>')",
    "capacity": "the pub/sub layer has no per-channel capacity",
    "expiry": "the pub/sub layer keeps no undelivered messages to expire",
    "group_expiry": "the pub/sub layer keeps memberships in memory without expiry",
    "cancel_safe": "the pub/sub layer unsubscribes a channel whose receive() is cancelled",
    "stats": "channels_redis has no stats()",
}
GAPS: dict[str, dict[str, str]] = {
    "memory": {},
    "redis": {},
    "redis_shards": {},
    "redis_cluster": {},
    "channels_redis": {
        "stats": "channels_redis has no stats()",
        "named_errors": "channels_redis's name errors do not include the offending value",
        "message_type_error": "channels_redis checks messages with assert (AssertionError)",
        "local_capacity": (
            "channels_redis keeps every process-local channel of a process in one sorted set, "
            "so one full channel makes group_send skip its siblings too"
        ),
        "send_many": "channels_redis has no group_send_many (chat sends to each group in turn)",
    },
    "channels_redis_pubsub": PUBSUB_GAPS,
}
FULL = (ChannelFull, ChannelsChannelFull)


class LayerUnderTest:
    """Builds layers of one backend with a given CONFIG, and closes them after the test."""

    def __init__(self, backend: str, redis_url: str, server_config: dict[str, Any]) -> None:
        self.backend = backend
        self.redis_url = redis_url
        self.server_config = server_config
        self.layers: list[Any] = []

    def require(self, feature: str) -> None:
        reason = GAPS[self.backend].get(feature)
        if reason:
            pytest.skip(f"{self.backend}: {reason}")

    def __call__(self, **config: Any) -> Any:
        from django.utils.module_loading import import_string

        backend_class = import_string(BACKENDS[self.backend])
        # channels_redis blocks 5 s per read while redis-py 8 times sockets out after 5 s: give
        # its sockets room, as config/settings.py does.
        reference_host = {"address": self.redis_url, "socket_timeout": 30}
        if self.backend == "channels_redis_pubsub":
            config = {"hosts": [reference_host]}
        elif self.backend == "channels_redis":
            config = {"hosts": [reference_host], **config}
        elif self.backend.startswith("redis"):
            config = {**self.server_config, **config}
        layer = backend_class(**config)
        self.layers.append(layer)
        return layer

    async def close(self) -> None:
        for layer in self.layers:
            if self.backend == "channels_redis":
                await layer.close_pools()
            elif self.backend == "channels_redis_pubsub":
                await layer.flush()
            else:
                await layer.close()


@pytest.fixture(params=list(BACKENDS))
async def make_layer(request, redis_server) -> AsyncIterator[LayerUnderTest]:
    redis_server.flushall()
    server_config: dict[str, Any] = {"hosts": [redis_server.url]}
    if request.param == "redis_shards":
        shards = request.getfixturevalue("redis_shards")
        shards.flushall()
        server_config = {"hosts": shards.urls}
    elif request.param == "redis_cluster":
        cluster = request.getfixturevalue("redis_cluster")
        cluster.flushall()
        server_config = {"cluster": cluster.url}
    factory = LayerUnderTest(request.param, redis_server.url, server_config)
    yield factory
    await factory.close()


@pytest.fixture
def layer(make_layer: LayerUnderTest) -> Any:
    return make_layer()


async def worker_channel(make_layer: LayerUnderTest, layer: Any, name: str) -> str:
    """A channel to send to before anyone receives: a worker channel where the backend keeps
    messages for absent receivers, else a process-local one (already listened to)."""
    if GAPS[make_layer.backend].get("durable"):
        return await layer.new_channel()
    return name


# -- send / receive -----------------------------------------------------------------------------


async def test_process_local_channel_round_trip(layer):
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "test.message", "text": "hello"})
    assert await receive(layer, channel) == {"type": "test.message", "text": "hello"}


async def test_worker_channel_keeps_messages_in_order_until_received(make_layer, layer):
    make_layer.require("durable")
    for number in range(5):
        await layer.send("test.worker", {"type": "job", "number": number})
    received = [(await receive(layer, "test.worker"))["number"] for _ in range(5)]
    assert received == [0, 1, 2, 3, 4]


async def test_message_values_survive_the_trip(layer):
    channel = await layer.new_channel()
    message = {
        "type": "test.values",
        "text": "grüße 73 de DL1ABC",
        "number": 12345678901,
        "ratio": 0.25,
        "flag": True,
        "nothing": None,
        "items": [1, "two", [3]],
        "nested": {"a": {"b": "c"}},
        "raw": b"\x00\xffbytes",
    }
    await layer.send(channel, message)
    assert await receive(layer, channel) == message


async def test_new_channel_names_are_unique_process_local_and_valid(make_layer, layer):
    make_layer.require("local_names")
    names = {await layer.new_channel() for _ in range(50)}
    assert len(names) == 50
    for name in names:
        assert "!" in name
        assert name.startswith("specific")
        assert re.fullmatch(r"[a-zA-Z0-9\-_.]+![a-zA-Z0-9\-_.]*", name), name
        assert len(name) < 100


async def test_receiver_waiting_before_the_send_gets_the_message(layer):
    channel = await layer.new_channel()
    waiting = asyncio.ensure_future(receive(layer, channel))
    await asyncio.sleep(0.05)
    await layer.send(channel, {"type": "late"})
    assert (await waiting)["type"] == "late"


# -- validation ---------------------------------------------------------------------------------

BAD_NAMES = ["", "has space", "ünïcode", "a" * 100, "slash/name", "colon:name", 42, None]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
async def test_invalid_channel_name_raises_type_error_naming_it(make_layer, layer, name):
    make_layer.require("validation")
    with pytest.raises(TypeError) as raised:
        await layer.send(name, {"type": "test"})
    if not GAPS[make_layer.backend].get("named_errors"):
        assert repr(name)[:20] in str(raised.value)
    with pytest.raises(TypeError):
        await layer.group_add("group", name)


@pytest.mark.parametrize("name", [*BAD_NAMES, "bang!group"], ids=repr)
async def test_invalid_group_name_raises_type_error(make_layer, layer, name):
    make_layer.require("validation")
    channel = await layer.new_channel()
    with pytest.raises(TypeError):
        await layer.group_add(name, channel)
    with pytest.raises(TypeError):
        await layer.group_send(name, {"type": "test"})


@pytest.mark.parametrize("message", [None, "text", ["type", "x"], 42], ids=repr)
async def test_non_dict_message_raises_type_error(make_layer, layer, message):
    make_layer.require("validation")
    make_layer.require("message_type_error")
    channel = await layer.new_channel()
    with pytest.raises(TypeError):
        await layer.send(channel, message)
    with pytest.raises(TypeError):
        await layer.group_send("group", message)


# -- capacity -----------------------------------------------------------------------------------


async def test_send_to_a_full_channel_raises_channel_full(make_layer):
    make_layer.require("capacity")
    layer = make_layer(capacity=3)
    for name in ["test.worker", await layer.new_channel()]:
        for number in range(3):
            await layer.send(name, {"type": "fill", "number": number})
        with pytest.raises(FULL):
            await layer.send(name, {"type": "one.too.many"})
        # The queued messages are intact and room frees up as they are received.
        assert (await receive(layer, name))["number"] == 0
        await layer.send(name, {"type": "fits.again", "number": 3})
        assert [(await receive(layer, name))["number"] for _ in range(3)] == [1, 2, 3]


async def test_channel_capacity_patterns_override_the_default(make_layer):
    make_layer.require("capacity")
    layer = make_layer(capacity=2, channel_capacity={"bulk.*": 5, re.compile(r"^tiny$"): 1})
    for number in range(5):
        await layer.send("bulk.jobs", {"type": "fill", "number": number})
    with pytest.raises(FULL):
        await layer.send("bulk.jobs", {"type": "over"})
    await layer.send("tiny", {"type": "fill"})
    with pytest.raises(FULL):
        await layer.send("tiny", {"type": "over"})
    await layer.send("other", {"type": "fill"})
    await layer.send("other", {"type": "fill"})
    with pytest.raises(FULL):
        await layer.send("other", {"type": "over"})


# -- groups -------------------------------------------------------------------------------------


async def test_group_send_reaches_every_member_once(layer):
    members = [await layer.new_channel() for _ in range(5)]
    outsider = await layer.new_channel()
    for channel in members:
        await layer.group_add("room.one", channel)
        await layer.group_add("room.one", channel)  # joining twice is one membership
    await layer.group_send("room.one", {"type": "chat.message", "text": "hi"})
    for channel in members:
        assert await receive(layer, channel) == {"type": "chat.message", "text": "hi"}
        assert await nothing_arrives(layer, channel, 0.1)
    assert await nothing_arrives(layer, outsider, 0.1)


async def test_group_send_many_reaches_each_groups_members_once_per_group_in_order(
    make_layer, layer
):
    """Our layers' `group_send_many` (a chat message to its room and the console): each member
    gets the message once for each of its groups, in the order the groups were given, on every
    shard layout; a bad group name is refused before anything is sent."""
    make_layer.require("send_many")
    room, console, both = [await layer.new_channel() for _ in range(3)]
    for group, channel in [("room.a", room), ("console", console), ("room.a", both)]:
        await layer.group_add(group, channel)
    await layer.group_add("console", both)
    message = {"type": "chat.room_event", "seq": 1}
    await layer.group_send_many(["room.a", "console", "room.empty"], message)
    for channel in (room, console):
        assert await receive(layer, channel) == message
        assert await nothing_arrives(layer, channel, 0.1)
    assert [await receive(layer, both), await receive(layer, both)] == [message, message]
    with pytest.raises(TypeError):
        await layer.group_send_many(["room.a", "bad group!"], {"type": "never.sent"})
    assert await nothing_arrives(layer, room, 0.1)


async def test_group_discard_stops_delivery_to_that_member_only(layer):
    stays, leaves = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room.two", stays)
    await layer.group_add("room.two", leaves)
    await layer.group_discard("room.two", leaves)
    await layer.group_discard("room.two", "specific.never!joined")  # not a member: no error
    await layer.group_send("room.two", {"type": "after.discard"})
    assert (await receive(layer, stays))["type"] == "after.discard"
    assert await nothing_arrives(layer, leaves)


async def test_group_send_to_an_empty_group_is_harmless(layer):
    await layer.group_send("nobody.here", {"type": "into.the.void"})


async def test_worker_channel_in_a_group_gets_group_messages(make_layer, layer):
    make_layer.require("durable")
    await layer.group_add("jobs", "test.worker")
    await layer.group_send("jobs", {"type": "job", "number": 1})
    assert (await receive(layer, "test.worker"))["number"] == 1


async def test_group_send_skips_a_full_member_and_delivers_to_the_others(make_layer):
    make_layer.require("capacity")
    make_layer.require("local_capacity")
    layer = make_layer(capacity=2)
    full, free = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room.three", full)
    await layer.group_add("room.three", free)
    await layer.send(full, {"type": "fill", "number": 0})
    await layer.send(full, {"type": "fill", "number": 1})
    await layer.group_send("room.three", {"type": "broadcast"})  # no ChannelFull here
    assert (await receive(layer, free))["type"] == "broadcast"
    assert [(await receive(layer, full))["type"] for _ in range(2)] == ["fill", "fill"]
    assert await nothing_arrives(layer, full)
    if not GAPS[make_layer.backend].get("stats"):
        assert layer.stats()["dropped"] == 1


async def test_many_concurrent_receivers_each_get_the_group_message(layer):
    channels = [await layer.new_channel() for _ in range(200)]
    for channel in channels:
        await layer.group_add("crowd", channel)
    receivers = [asyncio.ensure_future(receive(layer, channel, 10)) for channel in channels]
    await asyncio.sleep(0.05)
    await layer.group_send("crowd", {"type": "hello.crowd"})
    results = await asyncio.gather(*receivers)
    assert [message["type"] for message in results] == ["hello.crowd"] * 200


async def test_concurrent_receivers_on_one_channel_share_its_messages(make_layer, layer):
    channel = await worker_channel(make_layer, layer, "test.shared")
    receivers = [asyncio.ensure_future(receive(layer, channel, 10)) for _ in range(10)]
    await asyncio.sleep(0.05)
    for number in range(10):
        await layer.send(channel, {"type": "job", "number": number})
    results = await asyncio.gather(*receivers)
    assert sorted(message["number"] for message in results) == list(range(10))


# -- expiry -------------------------------------------------------------------------------------


async def test_undelivered_messages_expire(make_layer):
    make_layer.require("expiry")
    layer = make_layer(expiry=1)
    local = await layer.new_channel()
    for name in ["test.worker", local]:
        await layer.send(name, {"type": "stale"})
    await asyncio.sleep(1.6)
    for name in ["test.worker", local]:
        await layer.send(name, {"type": "fresh"})
        assert (await receive(layer, name))["type"] == "fresh"


async def test_group_memberships_expire(make_layer):
    make_layer.require("group_expiry")
    # channels_redis compares whole seconds, hence the generous margins.
    layer = make_layer(group_expiry=2)
    old, renewed = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room.expiring", old)
    await layer.group_add("room.expiring", renewed)
    await asyncio.sleep(2.0)
    await layer.group_add("room.expiring", renewed)
    await asyncio.sleep(1.2)
    await layer.group_send("room.expiring", {"type": "after.expiry"})
    assert (await receive(layer, renewed))["type"] == "after.expiry"
    assert await nothing_arrives(layer, old)


# -- flush and cancellation ---------------------------------------------------------------------


async def test_flush_forgets_messages_and_groups(make_layer, layer):
    channel = await layer.new_channel()
    await layer.group_add("room.flushed", channel)
    await layer.send(channel, {"type": "before.flush"})
    await layer.flush()
    if not GAPS[make_layer.backend].get("durable"):
        await layer.send("test.worker", {"type": "after.flush"})
    await layer.group_send("room.flushed", {"type": "to.nobody"})
    assert await nothing_arrives(layer, channel)


async def test_flush_also_empties_worker_queues(make_layer, layer):
    make_layer.require("durable")
    await layer.send("test.worker", {"type": "before.flush"})
    await layer.flush()
    await layer.send("test.worker", {"type": "after.flush"})
    assert (await receive(layer, "test.worker"))["type"] == "after.flush"


async def test_cancelled_receive_loses_nothing(make_layer, layer):
    make_layer.require("cancel_safe")
    for name in ["test.worker", await layer.new_channel()]:
        for _ in range(3):
            waiting = asyncio.ensure_future(layer.receive(name))
            await asyncio.sleep(0.05)
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
        await layer.send(name, {"type": "survivor", "number": 1})
        await layer.send(name, {"type": "survivor", "number": 2})
        # A receive cancelled the instant the message lands must not eat it either.
        racing = asyncio.ensure_future(layer.receive(name))
        await asyncio.sleep(0)
        racing.cancel()
        got: list[int] = []
        with contextlib.suppress(asyncio.CancelledError):
            got.append((await racing)["number"])
        while len(got) < 2:
            got.append((await receive(layer, name))["number"])
        assert got == [1, 2]


async def test_close_then_reuse_works(make_layer, layer):
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "before.close"})
    assert (await receive(layer, channel))["type"] == "before.close"
    await make_layer.close()
    make_layer.layers.clear()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "after.close"})
    assert (await receive(layer, channel))["type"] == "after.close"
    make_layer.layers.append(layer)


def test_every_backend_declares_its_gaps_with_a_reason():
    features: set[str] = set()
    for gaps in GAPS.values():
        features |= set(gaps)
    assert set(GAPS) == set(BACKENDS)
    for backend, gaps in GAPS.items():
        for feature, reason in gaps.items():
            assert reason.strip(), (backend, feature)
    assert not GAPS["redis"], "our Redis layer must meet the whole contract"
