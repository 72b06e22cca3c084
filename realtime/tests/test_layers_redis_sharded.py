"""The Redis layer beyond one server: sharded over three independent servers (``hosts``) and on a
3-master Redis Cluster (``cluster``), with real servers started by the root conftest.

The shared contract runs on both in test_layers_conformance.py; these tests cover what only
sharding brings: names spread over the servers, a stable assignment when a host is added, a
server or master that goes away failing only what it owns, a replica taking over a dead master,
and a live resharding of the cluster that loses no accepted worker message and duplicates no
group message.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis

from realtime.exceptions import LayerUnavailableError
from realtime.layers.redis import RedisChannelLayer
from realtime.layers.redis.connection import Server, Timeouts
from realtime.layers.redis.shards import RendezvousShards
from realtime.tests.helpers import receive


@pytest.fixture
async def make_layer() -> AsyncIterator[Callable[..., RedisChannelLayer]]:
    layers: list[RedisChannelLayer] = []

    def make(**config: Any) -> RedisChannelLayer:
        layer = RedisChannelLayer(**config)
        layers.append(layer)
        return layer

    yield make
    for layer in layers:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(layer.close(), 10)


async def eventually(check: Callable[[], Any], timeout: float = 20, what: str = "") -> None:
    """Wait until ``await check()`` returns without raising (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await check()
            return
        except (LayerUnavailableError, TimeoutError, AssertionError):
            if time.monotonic() > deadline:
                raise AssertionError(f"not within {timeout}s: {what}") from None
            await asyncio.sleep(0.1)


def names_owned_by(layer: RedisChannelLayer, server_index: int, prefix: str, count: int) -> list:
    """``count`` names starting with ``prefix`` whose owner is the layer's server_index-th server."""
    server = layer.shards.servers[server_index]
    found = []
    for number in range(10_000):
        name = f"{prefix}{number}"
        if layer.shards.server_for(name) is server:
            found.append(name)
            if len(found) == count:
                return found
    raise AssertionError(f"no {count} names of {server}")


# -- several independent servers ----------------------------------------------------------------


def test_adding_a_host_moves_only_the_names_the_new_host_wins() -> None:
    timeouts = Timeouts()
    three = RendezvousShards([Server(f"redis://10.0.0.{i}:6379", timeouts) for i in (1, 2, 3)])
    four = RendezvousShards([Server(f"redis://10.0.0.{i}:6379", timeouts) for i in (1, 2, 3, 4)])
    names = [f"room.{number}" for number in range(4000)]
    before = Counter(three.server_for(name).name for name in names)
    moved = [name for name in names if three.server_for(name).name != four.server_for(name).name]
    assert all(four.server_for(name).name == "redis://10.0.0.4:6379" for name in moved)
    assert 0.18 < len(moved) / len(names) < 0.32  # about a quarter
    assert all(900 < count < 1800 for count in before.values()), before


def test_the_same_server_listed_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="more than once"):
        RedisChannelLayer(hosts=["redis://127.0.0.1:1/0", "redis://127.0.0.1:1/0"])


def test_hosts_and_cluster_together_are_refused() -> None:
    with pytest.raises(ValueError, match="either hosts or cluster"):
        RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"], cluster="redis://127.0.0.1:2")


async def test_queues_groups_and_inboxes_spread_over_every_host(make_layer, redis_shards):
    redis_shards.flushall()
    sender = make_layer(hosts=redis_shards.urls)
    owner = make_layer(hosts=redis_shards.urls)
    for number in range(30):
        await sender.send(f"jobs.{number}", {"type": "job", "number": number})
        await sender.group_add(f"room.{number}", f"jobs.worker{number}")
    keys_per_server = [redis.Redis.from_url(url).dbsize() for url in redis_shards.urls]
    assert all(count >= 5 for count in keys_per_server), keys_per_server
    # Direct messages and remote memberships reach clients whose inboxes live anywhere.
    channels = [await owner.new_channel() for _ in range(10)]
    for channel in channels:
        await sender.send(channel, {"type": "direct", "to": channel})
        await sender.group_add("room.spread", channel)
    for channel in channels:
        assert (await receive(owner, channel))["to"] == channel
    client = owner._client()
    await eventually(
        lambda: _assert(len(client.groups.get("room.spread", {})) == 10),
        what="remote memberships applied",
    )
    await sender.group_send("room.spread", {"type": "to.all"})
    for channel in channels:
        assert (await receive(owner, channel))["type"] == "to.all"
    assert (await receive(owner, "jobs.7"))["number"] == 7


async def _assert(condition: bool) -> None:
    assert condition


async def test_a_host_that_goes_away_fails_only_what_it_owns_and_recovers(
    make_layer, fresh_redis_shards
):
    config = {"hosts": fresh_redis_shards.urls, "reconnect_max_delay": 0.2, "command_timeout": 2}
    sender = make_layer(**config)
    consumer = make_layer(**config)
    lost_group, kept_group = names_owned_by(sender, 0, "room.lost", 1)[0], None
    kept_group = names_owned_by(sender, 1, "room.kept", 1)[0]
    lost_queue = names_owned_by(sender, 0, "jobs.lost", 1)[0]
    kept_queue = names_owned_by(sender, 2, "jobs.kept", 1)[0]
    channel = await consumer.new_channel()
    await consumer.group_add(lost_group, channel)
    await consumer.group_add(kept_group, channel)
    await sender.group_send(lost_group, {"type": "before"})
    assert (await receive(consumer, channel))["type"] == "before"

    fresh_redis_shards.servers[0].stop()
    with pytest.raises(LayerUnavailableError, match=str(fresh_redis_shards.servers[0].port)):
        await sender.group_send(lost_group, {"type": "lost"})
    with pytest.raises(LayerUnavailableError):
        await sender.send(lost_queue, {"type": "lost"})
    # The other servers carry on.
    await sender.group_send(kept_group, {"type": "kept"})
    assert (await receive(consumer, channel))["type"] == "kept"
    await sender.send(kept_queue, {"type": "kept"})
    assert (await receive(consumer, kept_queue))["type"] == "kept"

    fresh_redis_shards.servers[0].start()

    async def group_works_again() -> None:
        await sender.group_send(lost_group, {"type": "back"})
        assert (await receive(consumer, channel, timeout=0.5))["type"] == "back"

    await eventually(group_works_again, what="the returned server's group delivers again")
    await sender.send(lost_queue, {"type": "back"})
    assert (await receive(consumer, lost_queue))["type"] == "back"


async def test_check_servers_names_the_host_that_is_away_until_it_returns(
    make_layer, fresh_redis_shards
):
    layer = make_layer(hosts=fresh_redis_shards.urls, reconnect_max_delay=0.2, command_timeout=2)
    channel = await layer.new_channel()
    for group in names_owned_by(layer, 2, "room.watched", 1):
        await layer.group_add(group, channel)  # a pub/sub connection to the third server
    await layer.check_servers()
    victim = fresh_redis_shards.servers[2]
    victim.stop()
    with pytest.raises(LayerUnavailableError, match=f":{victim.port}/0") as raised:
        await layer.check_servers()
    assert str(fresh_redis_shards.servers[0].port) not in str(raised.value)
    victim.start()
    await eventually(layer.check_servers, what="every host answers and listens again")


# -- Redis Cluster --------------------------------------------------------------------------------


async def test_check_servers_fails_while_a_cluster_slot_has_no_master(
    make_layer, fresh_redis_cluster
):
    cluster = fresh_redis_cluster
    layer = make_layer(cluster=cluster.url)
    await layer.check_servers()
    clients = [node.client() for node in cluster.nodes]
    try:
        first, _last, master, *_ = clients[0].execute_command("CLUSTER", "SLOTS")[0]
        slot, owner_id = int(first), master[2].decode()
        for client in clients:  # every node forgets who serves the slot
            client.execute_command("CLUSTER", "DELSLOTS", slot)
        deadline = time.monotonic() + 10
        while True:
            try:
                await layer.check_servers()
            except LayerUnavailableError as error:
                problem = str(error)
                break
            assert time.monotonic() < deadline, "the slot without a master went unnoticed"
            await asyncio.sleep(0.1)
        assert problem == "1 cluster slots have no master"
        owner = next(
            c for c in clients if c.execute_command("CLUSTER", "MYID").decode() == owner_id
        )
        owner.execute_command("CLUSTER", "ADDSLOTS", slot)
        await eventually(layer.check_servers, what="the slot has its master again")
    finally:
        for client in clients:
            client.close()


# -- Redis Cluster (the layer's traffic) ----------------------------------------------------------


async def test_cluster_uses_hash_tags_and_sharded_pub_sub(make_layer, redis_cluster):
    redis_cluster.flushall()
    layer = make_layer(cluster=redis_cluster.url)
    listener = make_layer(cluster=redis_cluster.url)
    await layer.send("jobs.tagged", {"type": "job"})
    key = "asgi:q:{jobs.tagged}"
    slot = redis.Redis(port=redis_cluster.nodes[0].port).cluster("KEYSLOT", key)
    owners = [
        node for node in redis_cluster.nodes if node.client().cluster("COUNTKEYSINSLOT", slot)
    ]
    assert len(owners) == 1
    channel = await listener.new_channel()
    await listener.group_add("room.sharded", channel)
    topic = b"asgi:g:{room.sharded}"
    subscribed = [
        node.client().execute_command("PUBSUB", "SHARDNUMSUB", topic)[1]
        for node in redis_cluster.nodes
    ]
    assert sorted(subscribed) == [0, 0, 1]  # only the slot's owner knows the subscription
    await layer.group_send("room.sharded", {"type": "hello"})
    assert (await receive(listener, channel))["type"] == "hello"


class WorkerTraffic:
    """Sends numbered messages to worker channels until stopped, remembering what was accepted
    (send returned) and what was refused (LayerUnavailableError)."""

    def __init__(self, layer: RedisChannelLayer, channels: list[str]) -> None:
        self.layer = layer
        self.channels = channels
        self.accepted: dict[str, set[int]] = {channel: set() for channel in channels}
        self.refused: Counter[str] = Counter()
        self.stopping = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.ensure_future(self.run())

    async def run(self) -> None:
        number = 0
        while not self.stopping.is_set() and number < 50_000:
            channel = self.channels[number % len(self.channels)]
            try:
                await self.layer.send(channel, {"type": "job", "n": number})
                self.accepted[channel].add(number)
            except LayerUnavailableError:
                self.refused[channel] += 1
                await asyncio.sleep(0.01)
            number += 1
            if number % 20 == 0:
                await asyncio.sleep(0.005)

    async def stop(self) -> None:
        self.stopping.set()
        assert self.task is not None
        await self.task

    def sent_since(self, mark: dict[str, int]) -> dict[str, int]:
        return {c: len(self.accepted[c]) - mark.get(c, 0) for c in self.channels}

    def mark(self) -> dict[str, int]:
        return {c: len(self.accepted[c]) for c in self.channels}


async def drain(layer: RedisChannelLayer, expected: dict[str, set[int]], timeout: float = 60):
    """Receive from each channel until every expected number arrived; what each one got."""
    got: dict[str, Counter[int]] = {channel: Counter() for channel in expected}
    deadline = time.monotonic() + timeout
    for channel, numbers in expected.items():
        while not numbers <= set(got[channel]) and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                message = await asyncio.wait_for(layer.receive(channel), 2)
                got[channel][message["n"]] += 1
    return got


async def test_a_killed_master_fails_only_its_slots_and_loses_nothing_accepted(
    make_layer, fresh_redis_cluster
):
    cluster = fresh_redis_cluster
    config = {"cluster": cluster.url, "reconnect_max_delay": 0.2, "command_timeout": 2}
    layer = make_layer(**config)
    chat = make_layer(**config)
    await layer.shards.refresh()
    victim = layer.shards.node("127.0.0.1", cluster.nodes[1].port)
    channels = [f"jobs.{number}" for number in range(24)]
    doomed = [c for c in channels if layer.shards.server_for(c) is victim]
    surviving = [c for c in channels if c not in doomed]
    assert doomed and surviving
    room = next(
        f"room.{n}" for n in range(1000) if layer.shards.server_for(f"room.{n}") is not victim
    )
    member = await chat.new_channel()
    await chat.group_add(room, member)

    traffic = WorkerTraffic(layer, channels)
    traffic.start()
    await asyncio.sleep(0.5)
    cluster.kill(1)
    await asyncio.sleep(0.5)  # traffic meets the dead master
    mark = traffic.mark()
    await asyncio.sleep(1.0)
    during = traffic.sent_since(mark)
    # The other masters keep accepting; the dead one's channels are refused, not queued.
    assert all(during[c] > 0 for c in surviving), during
    assert all(during[c] == 0 for c in doomed), during
    assert all(traffic.refused[c] > 0 for c in doomed)
    await layer.group_send(room, {"type": "chat.during.outage"})
    assert (await receive(chat, member))["type"] == "chat.during.outage"

    cluster.start_node(1)

    async def doomed_accepts_again() -> None:
        await layer.send(doomed[0], {"type": "job", "n": -1})

    await eventually(doomed_accepts_again, what="the restarted master accepts sends again")
    await traffic.stop()
    traffic.accepted[doomed[0]].add(-1)
    got = await drain(make_layer(**config), traffic.accepted)
    missing = {c: sorted(traffic.accepted[c] - set(got[c]))[:5] for c in channels}
    assert all(not numbers for numbers in missing.values()), missing


async def test_the_layer_follows_a_replica_that_takes_over_a_dead_master(
    make_layer, fresh_redis_cluster
):
    cluster = fresh_redis_cluster
    replica = cluster.add_replica(1)
    config = {"cluster": cluster.url, "reconnect_max_delay": 0.2, "command_timeout": 2}
    layer = make_layer(**config)
    members = make_layer(**config)
    await layer.shards.refresh()
    victim = layer.shards.node("127.0.0.1", cluster.nodes[1].port)
    queue = next(f"jobs.{n}" for n in range(1000) if layer.shards.server_for(f"jobs.{n}") is victim)
    room = next(f"room.{n}" for n in range(1000) if layer.shards.server_for(f"room.{n}") is victim)
    channel = await members.new_channel()
    await members.group_add(room, channel)
    await layer.send(queue, {"type": "job", "n": 1})
    master = cluster.nodes[1].client()
    assert master.execute_command("WAIT", 1, 5000) == 1  # the replica has it
    master.close()

    cluster.kill(1)
    cluster.take_over(replica)

    async def sends_again() -> None:
        await layer.send(queue, {"type": "job", "n": 2})

    await eventually(sends_again, what="a send to the dead master's slot reaches the new one")

    async def group_delivers_again() -> None:
        await layer.group_send(room, {"type": "chat"})
        assert (await receive(members, channel, timeout=0.5))["type"] == "chat"

    await eventually(group_delivers_again, what="the group is subscribed on the new master")
    consumer = make_layer(**config)
    assert [(await receive(consumer, queue))["n"] for _ in range(2)] == [1, 2]


async def test_resharding_under_traffic_loses_no_worker_message_and_repeats_no_group_message(
    make_layer, fresh_redis_cluster
):
    cluster = fresh_redis_cluster
    config = {"cluster": cluster.url, "reconnect_max_delay": 0.2}
    producer = make_layer(**config)
    worker = make_layer(**config)
    members = make_layer(**config)
    channels = [f"jobs.{number}" for number in range(16)]
    rooms = [f"room.{number}" for number in range(8)]
    inbox = {room: await members.new_channel() for room in rooms}
    for room, channel in inbox.items():
        await members.group_add(room, channel)

    received: dict[str, Counter[int]] = {channel: Counter() for channel in channels}
    group_seen: dict[str, Counter[int]] = {room: Counter() for room in rooms}
    group_sent: dict[str, set[int]] = {room: set() for room in rooms}
    stopping = asyncio.Event()

    async def consume(channel: str) -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                message = await asyncio.wait_for(worker.receive(channel), 0.5)
                received[channel][message["n"]] += 1

    async def listen(room: str) -> None:
        while not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                message = await asyncio.wait_for(members.receive(inbox[room]), 0.5)
                group_seen[room][message["n"]] += 1

    async def chatter() -> None:
        number = 0
        while not stopping.is_set() and number < 20_000:
            room = rooms[number % len(rooms)]
            with contextlib.suppress(LayerUnavailableError):
                await producer.group_send(room, {"type": "chat", "n": number})
                group_sent[room].add(number)
            number += 1
            await asyncio.sleep(0.002)

    traffic = WorkerTraffic(producer, channels)
    traffic.start()
    tasks = [asyncio.ensure_future(consume(c)) for c in channels]
    tasks += [asyncio.ensure_future(listen(r)) for r in rooms]
    tasks.append(asyncio.ensure_future(chatter()))
    await asyncio.sleep(0.5)

    def reshard() -> None:
        cluster.reshard(0, 1, 3000)
        cluster.reshard(2, 0, 2000)

    resharding = threading.Thread(target=reshard)
    resharding.start()
    await asyncio.to_thread(resharding.join, 180)
    assert not resharding.is_alive(), "redis-cli --cluster reshard did not finish"
    await asyncio.sleep(0.5)
    await traffic.stop()
    stopping.set()
    await asyncio.gather(*tasks)

    # Every accepted worker message arrives at least once.
    rest = await drain(worker, {c: traffic.accepted[c] - set(received[c]) for c in channels})
    for channel in channels:
        received[channel].update(rest[channel])
    missing = {c: sorted(traffic.accepted[c] - set(received[c]))[:5] for c in channels}
    assert all(not numbers for numbers in missing.values()), missing
    assert sum(len(numbers) for numbers in traffic.accepted.values()) > 200
    # Every group message arrives at most once, and the groups work after the move.
    repeated = {room: [n for n, k in seen.items() if k > 1] for room, seen in group_seen.items()}
    assert all(not numbers for numbers in repeated.values()), repeated
    assert all(set(group_seen[room]) <= group_sent[room] for room in rooms)
    for room in rooms:
        await producer.group_send(room, {"type": "chat", "n": -1})
        assert (await receive(members, inbox[room], timeout=10))["n"] == -1
