"""The worker: ChannelNameRouter routes fed from real channel layers (the in-memory one, and the
Redis one with acknowledged deliveries on a private redis-server), through real consumers (no
mocks). Each test runs a `Worker` in the test's event loop and watches what the consumers did,
what is left on the layer, the dead letters and the log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator

import pytest
from django.contrib.auth import get_user_model

import realtime.worker as worker_module
from realtime.consumer import AsyncConsumer, SyncConsumer
from realtime.exceptions import ConsumeLater, StopConsumer
from realtime.layers import channel_layers
from realtime.layers.memory import InMemoryChannelLayer
from realtime.layers.redis import RedisChannelLayer
from realtime.routing import ChannelNameRouter, ProtocolTypeRouter
from realtime.tests.helpers import wait_until
from realtime.worker import (
    DEAD_LETTER_MESSAGE_TYPE,
    RETRIES_KEY,
    DeadLetterReason,
    Worker,
    channel_route_names,
    inprocess_worker_wanted,
)


class JobConsumer(AsyncConsumer):
    """Runs "job.run" messages: "later" jobs raise ConsumeLater until they were re-queued
    `until` times, "fail" jobs raise, others succeed. Every attempt and success is recorded."""

    attempts: list | None = None
    done: list | None = None

    async def job_run(self, message: dict) -> None:
        self.attempts.append((self.scope["channel"], message["name"], message.get(RETRIES_KEY, 0)))
        behaviour = message.get("behaviour")
        if behaviour == "later" and message.get(RETRIES_KEY, 0) < message.get("until", 10**6):
            raise ConsumeLater()
        if behaviour == "fail":
            raise RuntimeError(f"job {message['name']} failed")
        self.done.append(message["name"])


class GatedConsumer(AsyncConsumer):
    """Holds each message until `gate` is set; marks `started` when a handler begins."""

    started: asyncio.Event | None = None
    gate: asyncio.Event | None = None
    events: list | None = None

    async def job_run(self, message: dict) -> None:
        self.events.append(f"start {message['name']}")
        self.started.set()
        await asyncio.sleep(0.001)
        await self.gate.wait()
        self.events.append(f"end {message['name']}")


@pytest.fixture(params=["memory", "redis"])
async def layer(request) -> AsyncIterator:
    """A fresh layer, installed as the default layer for the consumers too: the in-memory one,
    and Switchboard's Redis layer (acknowledged deliveries) on a flushed private redis-server."""
    if request.param == "memory":
        layer = InMemoryChannelLayer()
    else:
        redis_server = request.getfixturevalue("redis_server")
        redis_server.flushall()
        layer = RedisChannelLayer(hosts=[redis_server.url])
    previous = channel_layers.set("default", layer)
    yield layer
    if previous is None:
        channel_layers.backends.pop("default", None)
    else:
        channel_layers.set("default", previous)
    await layer.close()


def job(name: str, **fields: object) -> dict:
    return {"type": "job.run", "name": name, **fields}


@contextlib.asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[asyncio.Task]:
    task = asyncio.ensure_future(worker.run())
    try:
        yield task
    finally:
        worker.stop()
        await asyncio.wait_for(task, 10)


def job_worker(layer, channels=("jobs",), **worker_options) -> tuple[Worker, list, list]:
    attempts: list = []
    done: list = []
    route = JobConsumer.as_asgi(attempts=attempts, done=done)
    application = ProtocolTypeRouter({"channel": ChannelNameRouter({c: route for c in channels})})
    return Worker(application, list(channels), layer, **worker_options), attempts, done


async def test_worker_runs_the_channel_route_with_a_channel_scope(layer):
    scopes: list = []

    class ScopeConsumer(AsyncConsumer):
        async def job_run(self, message):
            scopes.append(dict(self.scope))

    application = ChannelNameRouter({"jobs": ScopeConsumer.as_asgi()})
    worker = Worker(application, ["jobs"], layer)
    await layer.send("jobs", job("a"))
    async with running(worker):
        await wait_until(lambda: scopes)
    assert scopes[0]["type"] == "channel"
    assert scopes[0]["channel"] == "jobs"


async def test_worker_handles_the_messages_of_a_channel_in_order(layer):
    worker, _, done = job_worker(layer)
    for name in "abcde":
        await layer.send("jobs", job(name))
    async with running(worker):
        await wait_until(lambda: len(done) == 5)
    assert done == list("abcde")
    assert worker.stats["handled"] == 5


async def test_worker_serves_each_channel_with_its_own_route(layer):
    worker, attempts, _ = job_worker(layer, channels=("mail", "thumbnails"))
    await layer.send("mail", job("welcome"))
    await layer.send("thumbnails", job("avatar"))
    async with running(worker):
        await wait_until(lambda: len(attempts) == 2)
    assert sorted(attempts) == [("mail", "welcome", 0), ("thumbnails", "avatar", 0)]


async def test_consume_later_puts_the_message_at_the_back_of_its_channel(layer):
    worker, attempts, done = job_worker(layer)
    await layer.send("jobs", job("a", behaviour="later", until=1))
    await layer.send("jobs", job("b"))
    await layer.send("jobs", job("c"))
    async with running(worker):
        await wait_until(lambda: len(done) == 3)
    assert done == ["b", "c", "a"]
    assert ("jobs", "a", 1) in attempts
    assert worker.stats["requeued"] == 1
    assert not worker.dead_letters


async def test_consume_later_dead_letters_after_max_retries_with_a_warning(layer, settings, caplog):
    settings.REALTIME_CONSUME_LATER_MAX_RETRIES = 3
    worker, attempts, done = job_worker(layer)
    await layer.send("jobs", job("stuck", behaviour="later"))
    await layer.send("jobs", job("after"))
    with caplog.at_level(logging.WARNING, logger="realtime.worker"):
        async with running(worker):
            await wait_until(lambda: worker.dead_letters and "after" in done)
    assert [retries for _, name, retries in attempts if name == "stuck"] == [0, 1, 2, 3]
    [letter] = worker.dead_letters
    assert letter.channel == "jobs"
    assert letter.reason is DeadLetterReason.RETRIES_EXHAUSTED
    assert letter.message["name"] == "stuck"
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "'jobs'" in record.getMessage()
    assert "'job.run'" in record.getMessage()
    assert "retries-exhausted" in record.getMessage()


async def test_max_retries_of_zero_dead_letters_on_the_first_consume_later(layer):
    worker, attempts, _ = job_worker(layer, max_retries=0)
    await layer.send("jobs", job("once", behaviour="later"))
    async with running(worker):
        await wait_until(lambda: worker.dead_letters)
    assert attempts == [("jobs", "once", 0)]


async def test_handler_error_is_logged_with_its_traceback_and_the_worker_goes_on(layer, caplog):
    worker, _, done = job_worker(layer)
    await layer.send("jobs", job("broken", behaviour="fail"))
    await layer.send("jobs", job("fine"))
    with caplog.at_level(logging.ERROR, logger="realtime.worker"):
        async with running(worker):
            await wait_until(lambda: done == ["fine"])
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert record.exc_info is not None
    assert "job broken failed" in str(record.exc_info[1])
    assert "'jobs'" in record.getMessage()
    [letter] = worker.dead_letters
    assert letter.reason is DeadLetterReason.ERROR
    assert "job broken failed" in letter.error
    assert worker.stats["errors"] == 1


async def test_dead_letters_are_forwarded_to_the_dead_letter_channel(layer):
    worker, _, _ = job_worker(layer, dead_letter_channel="dead-letters")
    await layer.send("jobs", job("broken", behaviour="fail"))
    async with running(worker):
        forwarded = await asyncio.wait_for(layer.receive("dead-letters"), 5)
    assert forwarded["type"] == DEAD_LETTER_MESSAGE_TYPE
    assert forwarded["channel"] == "jobs"
    assert forwarded["reason"] == "error"
    assert forwarded["message"]["name"] == "broken"


async def test_stop_lets_the_message_in_hand_finish_and_leaves_the_rest_queued(layer):
    started, gate, events = asyncio.Event(), asyncio.Event(), []
    route = GatedConsumer.as_asgi(started=started, gate=gate, events=events)
    worker = Worker(ChannelNameRouter({"jobs": route}), ["jobs"], layer)
    await layer.send("jobs", job("first"))
    await layer.send("jobs", job("second"))
    task = asyncio.ensure_future(worker.run())
    await asyncio.wait_for(started.wait(), 5)
    worker.stop()
    await asyncio.sleep(0.05)
    assert not task.done(), "the worker stopped before its message in hand was finished"
    gate.set()
    await asyncio.wait_for(task, 5)
    assert events == ["start first", "end first"]
    left = await asyncio.wait_for(layer.receive("jobs"), 5)
    assert left["name"] == "second"


async def test_stop_while_waiting_for_messages_ends_the_worker(layer):
    worker, _, _ = job_worker(layer, channels=("jobs", "mail"))
    task = asyncio.ensure_future(worker.run())
    await asyncio.sleep(0.01)
    worker.stop()
    await asyncio.wait_for(task, 5)
    await layer.send("jobs", job("later-arrival"))
    assert (await asyncio.wait_for(layer.receive("jobs"), 5))["name"] == "later-arrival"


async def test_stop_before_run_returns_without_taking_a_message(layer):
    worker, attempts, _ = job_worker(layer)
    await layer.send("jobs", job("untouched"))
    worker.stop()
    await asyncio.wait_for(worker.run(), 5)
    assert attempts == []
    assert (await asyncio.wait_for(layer.receive("jobs"), 5))["name"] == "untouched"


@pytest.mark.django_db(transaction=True)
async def test_sync_consumer_routes_run_their_handlers_in_a_thread_with_the_orm(layer):
    threads: list = []

    class SyncJobConsumer(SyncConsumer):
        def job_run(self, message):
            get_user_model().objects.create(username=f"job-{message['name']}")
            threads.append(threading.current_thread())

    worker = Worker(ChannelNameRouter({"jobs": SyncJobConsumer.as_asgi()}), ["jobs"], layer)
    await layer.send("jobs", job("a"))
    await layer.send("jobs", job("b"))
    async with running(worker):
        await wait_until(lambda: len(threads) == 2)
    assert threading.main_thread() not in threads
    assert await get_user_model().objects.filter(username__startswith="job-").acount() == 2


async def test_a_consumer_that_stops_after_each_message_is_started_again(layer):
    done: list = []

    class OneShotConsumer(AsyncConsumer):
        async def job_run(self, message):
            done.append(message["name"])
            raise StopConsumer()

    worker = Worker(ChannelNameRouter({"jobs": OneShotConsumer.as_asgi()}), ["jobs"], layer)
    for name in "xyz":
        await layer.send("jobs", job(name))
    async with running(worker):
        await wait_until(lambda: len(done) == 3)
    assert done == ["x", "y", "z"]
    assert worker.stats["handled"] == 3


async def test_an_instance_failing_between_messages_is_logged_and_replaced(layer, caplog):
    done: list = []

    class GroupAwareConsumer(AsyncConsumer):
        async def job_run(self, message):
            done.append(self.channel_name)

        async def group_poison(self, message):
            raise RuntimeError("poisoned by a group message")

    worker = Worker(ChannelNameRouter({"jobs": GroupAwareConsumer.as_asgi()}), ["jobs"], layer)
    await layer.send("jobs", job("first"))
    with caplog.at_level(logging.ERROR, logger="realtime.worker"):
        async with running(worker):
            await wait_until(lambda: len(done) == 1)
            await layer.send(done[0], {"type": "group.poison"})
            await wait_until(
                lambda: any("between messages" in r.getMessage() for r in caplog.records)
            )
            await layer.send("jobs", job("second"))
            await wait_until(lambda: len(done) == 2)
    assert done[0] != done[1], "the failed instance was not replaced by a fresh one"
    assert worker.stats["handled"] == 2


class UnreachableForAWhileLayer(InMemoryChannelLayer):
    """The in-memory layer, refusing the next `sends` sends and `receives` receives with
    ConnectionError once armed (a Redis outage as the worker sees it)."""

    def __init__(self, sends: int = 0, receives: int = 0) -> None:
        super().__init__()
        self.failing = {"send": sends, "receive": receives}
        self.armed = False

    def _fail_while_unreachable(self, operation: str) -> None:
        if self.armed and self.failing[operation] > 0:
            self.failing[operation] -= 1
            raise ConnectionError("layer unreachable")

    async def send(self, channel, message):
        self._fail_while_unreachable("send")
        await super().send(channel, message)

    async def receive(self, channel):
        self._fail_while_unreachable("receive")
        return await super().receive(channel)


async def test_a_failing_receive_is_logged_and_retried_without_ending_the_worker(caplog):
    layer = UnreachableForAWhileLayer(receives=2)
    worker, _, done = job_worker(layer)
    await layer.send("jobs", job("after-the-outage"))
    layer.armed = True
    with caplog.at_level(logging.ERROR, logger="realtime.worker"):
        async with running(worker):
            await wait_until(lambda: done == ["after-the-outage"])
    assert caplog.text.count("Receiving from channel 'jobs' failed") == 2


async def test_a_requeue_the_layer_refuses_is_retried_until_it_is_taken(caplog):
    layer = UnreachableForAWhileLayer(sends=2)
    worker, attempts, done = job_worker(layer)
    await layer.send("jobs", job("deferred", behaviour="later", until=1))
    layer.armed = True
    with caplog.at_level(logging.ERROR, logger="realtime.worker"):
        async with running(worker):
            await wait_until(lambda: done == ["deferred"])
    assert attempts == [("jobs", "deferred", 0), ("jobs", "deferred", 1)]
    assert caplog.text.count("Re-queueing a message on channel 'jobs' failed") == 2
    assert not worker.dead_letters


class CancelIgnoringLayer(InMemoryChannelLayer):
    """The in-memory layer with a receive() that carries on waiting when cancelled (as
    channels_redis does on redis-py 8)."""

    async def receive(self, channel):
        while True:
            try:
                return await super().receive(channel)
            except asyncio.CancelledError:
                continue


async def test_stop_does_not_hang_on_a_layer_whose_receive_ignores_cancellation(
    monkeypatch, caplog
):
    monkeypatch.setattr(worker_module, "RECEIVE_CANCEL_GRACE", 0.1)
    layer = CancelIgnoringLayer()
    worker, attempts, _ = job_worker(layer)
    task = asyncio.ensure_future(worker.run())
    await asyncio.sleep(0.01)
    with caplog.at_level(logging.WARNING, logger="realtime.worker"):
        worker.stop()
        await asyncio.wait_for(task, 5)
        assert "did not end within" in caplog.text
        await layer.send("jobs", job("too-late"))
        await wait_until(lambda: "after the worker stopped waiting" in caplog.text)
    assert attempts == []


class AckingLayer(InMemoryChannelLayer):
    """The in-memory layer plus the acknowledgement API a durable layer offers to workers."""

    def __init__(self, events: list) -> None:
        super().__init__()
        self.events = events

    async def receive_with_ack(self, channel):
        message = await self.receive(channel)

        async def ack() -> None:
            self.events.append(f"ack {message['name']}")

        return message, ack


async def test_worker_acknowledges_a_message_only_after_its_handler_finished():
    events: list = []
    layer = AckingLayer(events)
    started, gate = asyncio.Event(), asyncio.Event()
    gate.set()
    route = GatedConsumer.as_asgi(started=started, gate=gate, events=events)
    worker = Worker(ChannelNameRouter({"jobs": route}), ["jobs"], layer)
    await layer.send("jobs", job("one"))
    await layer.send("jobs", job("two"))
    async with running(worker):
        await wait_until(lambda: "ack two" in events)
    assert events == ["start one", "end one", "ack one", "start two", "end two", "ack two"]


def test_worker_refuses_process_local_channel_names():
    with pytest.raises(ValueError, match="reply!abc"):
        Worker(ChannelNameRouter({}), ["reply!abc"], InMemoryChannelLayer())


def test_channel_route_names_are_found_through_the_protocol_router_and_middleware():
    class Middleware:
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            await self.inner(scope, receive, send)

    route = JobConsumer.as_asgi()
    application = ProtocolTypeRouter(
        {"channel": Middleware(ChannelNameRouter({"mail": route, "fanout": route}))}
    )
    assert channel_route_names(application) == ["fanout", "mail"]
    assert channel_route_names(ProtocolTypeRouter({"websocket": route})) == []


@pytest.mark.parametrize(
    ("mode", "layer_kind", "wanted"),
    [
        ("auto", "memory", True),
        ("auto", "redis", False),
        ("on", "redis", True),
        ("off", "memory", False),
        ("ON", "memory", True),
        ("on", None, False),
    ],
)
def test_the_web_process_runs_the_worker_itself_only_where_it_can_reach_the_layer(
    mode, layer_kind, wanted
):
    layers = {
        "memory": InMemoryChannelLayer(),
        "redis": RedisChannelLayer(hosts=["redis://127.0.0.1:1/0"]),
        None: None,
    }
    assert inprocess_worker_wanted(mode, layers[layer_kind]) is wanted


def test_an_unknown_in_process_worker_mode_is_refused_naming_it():
    with pytest.raises(ValueError, match="'sometimes'"):
        inprocess_worker_wanted("sometimes", InMemoryChannelLayer())


class UnreachableAckingLayer(UnreachableForAWhileLayer):
    """A durable layer (acknowledgements) that becomes unreachable for sends."""

    def __init__(self, sends: int) -> None:
        super().__init__(sends=sends)
        self.acked: list = []

    async def receive_with_ack(self, channel):
        message = await self.receive(channel)

        async def ack() -> None:
            self.acked.append(message["name"])

        return message, ack


async def test_a_deferred_message_the_layer_cannot_take_back_is_not_acknowledged_on_stop(caplog):
    """ConsumeLater while the layer refuses the re-queue, then a stop: acknowledging the message
    would lose it; left unacknowledged, the durable layer delivers it again to the next worker."""
    layer = UnreachableAckingLayer(sends=10**6)
    worker, attempts, _ = job_worker(layer)
    await layer.send("jobs", job("deferred", behaviour="later", until=1))
    layer.armed = True
    with caplog.at_level(logging.ERROR, logger="realtime.worker"):
        async with running(worker):
            await wait_until(
                lambda: "Re-queueing a message on channel 'jobs' failed" in caplog.text
            )
    assert attempts == [("jobs", "deferred", 0)]
    assert "stopping with it unacknowledged" in caplog.text
    assert layer.acked == []
