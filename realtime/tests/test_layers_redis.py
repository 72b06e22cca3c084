"""What only the Redis layer promises: several OS processes, durable worker queues, Redis faults,
slow consumers, encryption and a small, fixed number of connections.

The contract every layer shares is in test_layers_conformance.py. Cross-process tests run
``layer_peer.py`` as a second OS process on the same private redis-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from realtime.layers.redis import LayerUnavailableError, RedisChannelLayer
from realtime.tests.helpers import nothing_arrives, receive, wait_until
from tests.servers import free_port, stop_process, wait_for_port

PEER = Path(__file__).with_name("layer_peer.py")


class Peer:
    """A layer_peer.py process; ``next()`` returns its next JSON line (waiting off the loop)."""

    def __init__(self, url: str, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(PEER), url, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    async def next(self, timeout: float = 20) -> dict[str, Any]:
        try:
            line = await asyncio.to_thread(self.lines.get, True, timeout)
        except queue.Empty:
            stderr = ""
            if self.process.poll() is not None and self.process.stderr is not None:
                stderr = self.process.stderr.read()
            pytest.fail(f"peer {self.process.args[2:]} said nothing within {timeout}s\n{stderr}")
        return json.loads(line)

    async def nothing_more(self, wait: float = 0.5) -> bool:
        with contextlib.suppress(queue.Empty):
            line = await asyncio.to_thread(self.lines.get, True, wait)
            pytest.fail(f"peer said {line!r}, expected silence")
        return True

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


@pytest.fixture
def peers() -> Iterator[list[Peer]]:
    started: list[Peer] = []
    yield started
    for peer in started:
        peer.stop(signal.SIGKILL)


@pytest.fixture
async def make_layer(redis_server) -> AsyncIterator[Any]:
    redis_server.flushall()
    layers: list[RedisChannelLayer] = []

    def make(url: str | dict | None = None, **config: Any) -> RedisChannelLayer:
        layer = RedisChannelLayer(hosts=[url or redis_server.url], **config)
        layers.append(layer)
        return layer

    yield make
    for layer in layers:
        await layer.close()


async def wait_until_subscribed(url: str, topic: bytes | str, subscribers: int) -> None:
    """Wait (bounded) until `topic` has exactly `subscribers` pub/sub subscribers on the Redis at
    `url`: another process, or this one's pub/sub loop, has acted on what it was told."""
    admin = redis.Redis.from_url(url)
    try:
        await wait_until(lambda: admin.pubsub_numsub(topic)[0][1] == subscribers, timeout=10)
    finally:
        admin.close()


def client_connections(url: str) -> list[dict[str, Any]]:
    """The clients connected to the Redis at ``url``, without the one asking."""
    admin = redis.Redis.from_url(url)
    try:
        me = admin.client_id()
        return [client for client in admin.client_list() if int(client["id"]) != me]
    finally:
        admin.close()


# -- several processes --------------------------------------------------------------------------


async def test_group_member_in_another_process_gets_group_send(make_layer, peers, redis_server):
    layer = make_layer()
    peers.append(member := Peer(redis_server.url, "listen", "room.cross"))
    await member.next()  # {"channel": ...}: joined and subscribed
    for number in range(3):
        await layer.group_send("room.cross", {"type": "from.test", "number": number})
    got = [(await member.next())["message"]["number"] for _ in range(3)]
    assert got == [0, 1, 2]


async def test_group_send_from_another_process_reaches_members_here(
    make_layer, peers, redis_server
):
    layer = make_layer()
    channels = [await layer.new_channel() for _ in range(3)]
    for channel in channels:
        await layer.group_add("room.back", channel)
    peers.append(sender := Peer(redis_server.url, "group-send", "room.back", "5"))
    assert (await sender.next()) == {"sent": 5}
    for channel in channels:
        assert [(await receive(layer, channel))["number"] for _ in range(5)] == [0, 1, 2, 3, 4]


async def test_membership_changed_by_another_process_reaches_the_owner(
    make_layer, peers, redis_server
):
    layer = make_layer()  # plays the Django view that calls Group(g).add(name)
    peers.append(owner := Peer(redis_server.url, "listen"))
    channel = (await owner.next())["channel"]
    await layer.group_add("room.remote", channel)
    # The owner subscribes to the group's topic when its inbox tells it.
    await wait_until_subscribed(redis_server.url, layer.keys.group_topic("room.remote"), 1)
    await layer.group_send("room.remote", {"type": "joined.remotely"})
    assert (await owner.next())["message"] == {"type": "joined.remotely"}
    await layer.group_discard("room.remote", channel)
    await wait_until_subscribed(redis_server.url, layer.keys.group_topic("room.remote"), 0)
    await layer.group_send("room.remote", {"type": "after.discard"})
    await layer.send(channel, {"type": "direct.still.works"})
    assert (await owner.next())["message"] == {"type": "direct.still.works"}


async def test_membership_added_while_the_owner_is_cut_off_arrives_on_reconnect(
    make_layer, fresh_redis
):
    owner = make_layer(fresh_redis.url, reconnect_max_delay=0.2)
    view = make_layer(fresh_redis.url)
    channel = await owner.new_channel()
    client = owner._client()
    # Cut the owner's pub/sub connection: Redis closes it, the owner reconnects by itself.
    admin = redis.Redis.from_url(fresh_redis.url)
    await view.group_add("room.offline", channel)
    admin.client_kill_filter(_type="pubsub")
    admin.close()
    await view.group_add("room.later", channel)
    await wait_until(lambda: "room.later" in client.groups, timeout=10)
    await wait_until_subscribed(fresh_redis.url, owner.keys.group_topic("room.later"), 1)
    await view.group_send("room.later", {"type": "after.reconnect"})
    assert (await receive(owner, channel))["type"] == "after.reconnect"


async def test_a_remotely_added_membership_left_locally_stays_left_after_a_reconnect(
    make_layer, fresh_redis
):
    owner = make_layer(fresh_redis.url, reconnect_max_delay=0.2)
    view = make_layer(fresh_redis.url)
    channel = await owner.new_channel()
    client = owner._client()
    await view.group_add("room.left", channel)
    await wait_until(lambda: "room.left" in client.groups, timeout=10)
    await owner.group_discard("room.left", channel)  # the consumer leaves by itself
    admin = redis.Redis.from_url(fresh_redis.url)
    admin.client_kill_filter(_type="pubsub")
    admin.close()
    # Reconnected: subscribed to its inbox again, which makes it re-read its memberships (a
    # wrongly kept one would be back within the half second nothing_arrives waits below).
    await wait_until_subscribed(fresh_redis.url, client.inbox, 1)
    await view.group_send("room.left", {"type": "not.for.leavers"})
    assert await nothing_arrives(owner, channel, 0.5)


async def test_an_add_that_arrives_after_the_channel_left_does_not_bring_it_back(
    make_layer, fresh_redis
):
    """The race behind an occasional failure of the test above: a remote group_add's inbox frame
    (or a re-read of the hash begun before the leave) applied after the channel left the group
    here. An add made after the leave still counts."""
    from realtime.layers.redis.wire import added_frame

    owner = make_layer(fresh_redis.url)
    view = make_layer(fresh_redis.url)
    channel = await owner.new_channel()
    client = owner._client()
    made = time.time()
    await view.group_add("room.late", channel)
    await wait_until(lambda: "room.late" in client.groups, timeout=10)
    await owner.group_discard("room.late", channel)
    client.on_inbox(added_frame("room.late", channel, made))  # the add's frame, late
    assert "room.late" not in client.groups
    await view.group_send("room.late", {"type": "not.for.leavers"})
    assert await nothing_arrives(owner, channel, 0.3)
    await view.group_add("room.late", channel)  # joining again afterwards
    await wait_until(lambda: "room.late" in client.groups, timeout=10)
    await view.group_send("room.late", {"type": "for.the.returning"})
    assert (await receive(owner, channel))["type"] == "for.the.returning"


# -- durable worker queues ----------------------------------------------------------------------


async def test_message_sent_while_no_worker_runs_is_delivered_when_one_starts(
    make_layer, peers, redis_server
):
    sender = make_layer()
    await sender.send("jobs.durable", {"type": "job", "number": 7})
    await sender.close()
    peers.append(worker := Peer(redis_server.url, "worker", "jobs.durable"))
    assert await worker.next() == {"ready": "jobs.durable"}
    assert (await worker.next())["message"] == {"type": "job", "number": 7}


async def test_message_taken_by_a_killed_worker_is_delivered_again(make_layer, peers, redis_server):
    layer = make_layer(worker_lease=1)
    await layer.send("jobs.fragile", {"type": "job", "number": 1})
    peers.append(doomed := Peer(redis_server.url, "worker", "jobs.fragile", "hold"))
    await doomed.next()
    assert (await doomed.next())["message"]["number"] == 1
    doomed.stop(signal.SIGKILL)
    # The message is in the dead worker's in-flight list until its lease runs out.
    message, ack = await asyncio.wait_for(layer.receive_with_ack("jobs.fragile"), 10)
    assert message == {"type": "job", "number": 1}
    await ack()
    assert await nothing_arrives(layer, "jobs.fragile", 1.5)


async def test_acknowledged_messages_are_not_delivered_again(make_layer, redis_server):
    first = make_layer(worker_lease=0.5)
    for number in range(3):
        await first.send("jobs.once", {"type": "job", "number": number})
    for _ in range(3):
        _, ack = await asyncio.wait_for(first.receive_with_ack("jobs.once"), 5)
        await ack()
    await first.close()
    second = make_layer(worker_lease=0.5)
    assert await nothing_arrives(second, "jobs.once", 1.5)


async def test_unacknowledged_message_returns_when_its_consumer_closes(make_layer):
    first = make_layer(worker_lease=0.5)
    await first.send("jobs.handover", {"type": "job", "number": 1})
    message, _ = await asyncio.wait_for(first.receive_with_ack("jobs.handover"), 5)
    assert message["number"] == 1
    await first.close()  # never acknowledged
    second = make_layer(worker_lease=0.5)
    assert (await receive(second, "jobs.handover", 10))["number"] == 1


# -- faults -------------------------------------------------------------------------------------


async def test_redis_restart_during_use_recovers_and_group_messages_flow_again(
    make_layer, fresh_redis, caplog
):
    caplog.set_level(logging.INFO, logger="realtime.layers.redis")
    layer = make_layer(fresh_redis.url, reconnect_max_delay=0.3)
    channel = await layer.new_channel()
    await layer.group_add("room.restart", channel)
    await layer.group_send("room.restart", {"type": "before"})
    assert (await receive(layer, channel))["type"] == "before"

    fresh_redis.stop()
    with pytest.raises(LayerUnavailableError, match="unreachable"):
        await layer.group_send("room.restart", {"type": "during"})
    with pytest.raises(ConnectionError):
        await layer.send("jobs.outage", {"type": "during"})
    # Local delivery needs no Redis.
    await layer.send(channel, {"type": "local.during"})
    assert (await receive(layer, channel))["type"] == "local.during"
    await asyncio.sleep(0.5)
    fresh_redis.start()

    delivered = None
    for _ in range(50):
        with contextlib.suppress(LayerUnavailableError):
            await layer.group_send("room.restart", {"type": "after"})
            with contextlib.suppress(TimeoutError):
                delivered = await asyncio.wait_for(layer.receive(channel), 0.2)
                break
        await asyncio.sleep(0.1)
    assert delivered == {"type": "after"}
    await layer.send("jobs.outage", {"type": "after"})
    assert (await receive(layer, "jobs.outage"))["type"] == "after"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "unreachable" in warnings[0].getMessage()
    assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_waiting_receivers_do_not_spin_while_redis_is_down(make_layer, fresh_redis):
    layer = make_layer(fresh_redis.url, reconnect_max_delay=0.5)
    channel = await layer.new_channel()
    await layer.group_add("room.down", channel)
    local_wait = asyncio.ensure_future(layer.receive(channel))
    worker_wait = asyncio.ensure_future(layer.receive("jobs.down"))
    await asyncio.sleep(0.2)
    fresh_redis.stop()
    cpu_before = time.process_time()
    await asyncio.sleep(2)
    cpu_used = time.process_time() - cpu_before
    assert not local_wait.done() and not worker_wait.done()
    assert cpu_used < 0.5, f"{cpu_used:.2f}s of CPU in 2s of outage: a busy loop"
    fresh_redis.start()
    for _ in range(50):
        with contextlib.suppress(LayerUnavailableError):
            await layer.send("jobs.down", {"type": "back"})
            break
        await asyncio.sleep(0.1)
    assert (await asyncio.wait_for(worker_wait, 10))["type"] == "back"
    local_wait.cancel()


# -- slow consumers, encryption, connections ----------------------------------------------------


async def test_slow_consumer_misses_messages_alone_and_drops_are_counted(make_layer):
    layer = make_layer(capacity=5)
    slow, fast = await layer.new_channel(), await layer.new_channel()
    await layer.group_add("room.speed", slow)
    await layer.group_add("room.speed", fast)
    for number in range(10):
        await layer.group_send("room.speed", {"type": "tick", "number": number})
        assert (await receive(layer, fast))["number"] == number
    assert [(await receive(layer, slow))["number"] for _ in range(5)] == [0, 1, 2, 3, 4]
    assert await nothing_arrives(layer, slow)
    assert layer.stats()["dropped"] == 5


async def test_send_to_a_full_channel_of_another_process_is_dropped_and_counted_there(make_layer):
    owner = make_layer(capacity=2)
    other = make_layer()  # another client: its sends travel through the owner's inbox
    channel = await owner.new_channel()
    for number in range(3):
        await other.send(channel, {"type": "remote", "number": number})
    for _ in range(50):  # nobody receives yet: the third arrives at a full queue
        if owner.stats()["dropped"]:
            break
        await asyncio.sleep(0.05)
    assert [(await receive(owner, channel))["number"] for _ in range(2)] == [0, 1]
    assert await nothing_arrives(owner, channel)
    assert owner.stats()["dropped"] == 1


async def test_channels_of_vanished_consumers_are_swept_once_their_messages_expire(make_layer):
    layer = make_layer(expiry=1, health_check_interval=0.3)
    reader, abandoned = await layer.new_channel(), await layer.new_channel()
    await layer.send(abandoned, {"type": "never.read"})
    client = layer._client()
    assert abandoned in client.channels
    await asyncio.sleep(2.5)  # expired, and the pub/sub loop swept in between
    assert abandoned not in client.channels
    await layer.send(reader, {"type": "still.works"})
    assert (await receive(layer, reader))["type"] == "still.works"


async def test_encrypted_payloads_round_trip_and_a_wrong_key_cannot_read_them(
    make_layer, redis_server
):
    sender = make_layer(symmetric_encryption_keys=["first-secret"])
    await sender.send("jobs.secret", {"type": "secret", "text": "the launch code"})
    raw = redis.Redis.from_url(redis_server.url).lrange("asgi:q:jobs.secret", 0, -1)
    assert raw and b"launch code" not in raw[0]

    wrong = make_layer(symmetric_encryption_keys=["another-secret"])
    assert await nothing_arrives(wrong, "jobs.secret", 0.5)
    assert wrong.stats()["undecryptable"] == 1

    await sender.send("jobs.secret", {"type": "secret", "text": "rotated"})
    rotated = make_layer(symmetric_encryption_keys=["new-secret", "first-secret"])
    assert (await receive(rotated, "jobs.secret"))["text"] == "rotated"

    channel = await rotated.new_channel()
    await rotated.group_add("room.secret", channel)
    await sender.group_send("room.secret", {"type": "group.secret"})
    assert (await receive(rotated, channel))["type"] == "group.secret"


async def test_layers_with_different_prefixes_do_not_see_each_other(make_layer, redis_server):
    blue, green = make_layer(prefix="blue"), make_layer(prefix="green")
    blue_member, green_member = await blue.new_channel(), await green.new_channel()
    await blue.group_add("room.shared-name", blue_member)
    await green.group_add("room.shared-name", green_member)
    await blue.send("jobs.shared-name", {"type": "blue.job"})
    await blue.group_send("room.shared-name", {"type": "blue.news"})
    assert (await receive(blue, blue_member))["type"] == "blue.news"
    assert await nothing_arrives(green, green_member)
    assert await nothing_arrives(green, "jobs.shared-name")
    assert (await receive(blue, "jobs.shared-name"))["type"] == "blue.job"
    keys = redis.Redis.from_url(redis_server.url).keys("*")
    assert keys and all(key.startswith((b"blue:", b"green:")) for key in keys)


async def test_two_thousand_consumers_share_a_few_connections(make_layer, redis_server):
    layer = make_layer()
    joined = asyncio.Event()
    ready = 0

    async def consumer() -> dict[str, Any]:
        nonlocal ready
        channel = await layer.new_channel()
        await layer.group_add("room.big", channel)
        await layer.group_add(f"user.{channel[-8:]}", channel)
        ready += 1
        if ready == 2000:
            joined.set()
        return await receive(layer, channel, 30)

    consumers = [asyncio.ensure_future(consumer()) for _ in range(2000)]
    await asyncio.wait_for(joined.wait(), 60)
    await layer.group_send("room.big", {"type": "hello.everyone"})
    results = await asyncio.gather(*consumers)
    assert all(message == {"type": "hello.everyone"} for message in results)
    # One command connection and one pub/sub connection, whatever the number of channels.
    assert len(client_connections(redis_server.url)) == 2


async def test_each_event_loop_gets_its_own_client_and_closes_it_with_the_loop(redis_server):
    redis_server.flushall()
    layer = RedisChannelLayer(hosts=[redis_server.url])

    async def round_trip() -> dict[str, Any]:
        channel = await layer.new_channel()
        await layer.group_add("room.loops", channel)
        await layer.group_send("room.loops", {"type": "loop.message"})
        return await receive(layer, channel)

    def in_new_loop() -> dict[str, Any]:
        loop = asyncio.new_event_loop()
        try:
            return loop.run_until_complete(round_trip())
        finally:
            loop.close()

    for _ in range(3):
        assert await asyncio.to_thread(in_new_loop) == {"type": "loop.message"}
    assert client_connections(redis_server.url) == []
    assert await round_trip() == {"type": "loop.message"}
    await layer.close()


async def test_a_hung_redis_counts_as_down_and_the_layer_recovers_when_it_resumes(
    make_layer, fresh_redis
):
    layer = make_layer(
        fresh_redis.url, command_timeout=0.5, health_check_interval=0.3, reconnect_max_delay=0.3
    )
    channel = await layer.new_channel()
    await layer.group_add("room.hung", channel)
    fresh_redis.process.send_signal(signal.SIGSTOP)
    try:
        with pytest.raises(LayerUnavailableError):
            await layer.group_send("room.hung", {"type": "while.hung"})
    finally:
        fresh_redis.process.send_signal(signal.SIGCONT)
    delivered = None
    for _ in range(50):
        with contextlib.suppress(LayerUnavailableError):
            await layer.group_send("room.hung", {"type": "resumed"})
            with contextlib.suppress(TimeoutError):
                delivered = await asyncio.wait_for(layer.receive(channel), 0.2)
                if delivered["type"] == "resumed":
                    break
        await asyncio.sleep(0.1)
    assert delivered == {"type": "resumed"}


@pytest.fixture
def sentinel(fresh_redis, tmp_path) -> Iterator[int]:
    """A Redis Sentinel watching ``fresh_redis`` as master "sbmaster"; yields its port."""
    port = free_port()
    config = tmp_path / "sentinel.conf"
    config.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {tmp_path}\n"
        f"sentinel monitor sbmaster 127.0.0.1 {fresh_redis.port} 1\n"
    )
    process = subprocess.Popen(
        ["redis-server", str(config), "--sentinel"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for_port(port, process=process)
    yield port
    stop_process(process)


async def test_layer_finds_its_redis_through_sentinel(make_layer, sentinel, fresh_redis):
    layer = make_layer({"sentinels": [("127.0.0.1", sentinel)], "master_name": "sbmaster"})
    channel = await layer.new_channel()
    await layer.group_add("room.sentinel", channel)
    await layer.group_send("room.sentinel", {"type": "via.sentinel"})
    assert (await receive(layer, channel))["type"] == "via.sentinel"
    await layer.send("jobs.sentinel", {"type": "job"})
    # The job went to the master Sentinel named, the private fresh_redis.
    assert redis.Redis(port=fresh_redis.port).llen("asgi:q:jobs.sentinel") == 1
    assert (await receive(layer, "jobs.sentinel"))["type"] == "job"
