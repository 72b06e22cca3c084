"""InMemoryChannelLayer: the contract, plus what it does better than Channels' in-memory layer."""

import asyncio
import random
import re
import string
import threading

import pytest
from asgiref.sync import async_to_sync
from hypothesis import example, given
from hypothesis import strategies as st

from realtime.exceptions import ChannelFull
from realtime.layers.memory import InMemoryChannelLayer


@pytest.fixture
def layer() -> InMemoryChannelLayer:
    return InMemoryChannelLayer()


async def receive_soon(layer: InMemoryChannelLayer, channel: str) -> dict:
    return await asyncio.wait_for(layer.receive(channel), 2)


async def assert_nothing_arrives(layer: InMemoryChannelLayer, channel: str) -> None:
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.05)


# -- send and receive ---------------------------------------------------------------------------


async def test_received_message_equals_the_sent_one(layer):
    await layer.send("worker.mail", {"type": "mail.send", "to": ["a@example.com"]})
    assert await receive_soon(layer, "worker.mail") == {
        "type": "mail.send",
        "to": ["a@example.com"],
    }


async def test_messages_on_one_channel_arrive_in_send_order(layer):
    for number in range(5):
        await layer.send("worker.mail", {"type": "mail.send", "n": number})
    received = [(await receive_soon(layer, "worker.mail"))["n"] for _ in range(5)]
    assert received == [0, 1, 2, 3, 4]


async def test_receive_waits_for_a_message_sent_later(layer):
    waiting = asyncio.create_task(layer.receive("worker.mail"))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await layer.send("worker.mail", {"type": "mail.send"})
    assert await asyncio.wait_for(waiting, 2) == {"type": "mail.send"}


async def test_each_message_goes_to_exactly_one_of_two_waiting_receivers(layer):
    first = asyncio.create_task(layer.receive("worker.mail"))
    second = asyncio.create_task(layer.receive("worker.mail"))
    await asyncio.sleep(0)
    await layer.send("worker.mail", {"type": "mail.send", "n": 1})
    await layer.send("worker.mail", {"type": "mail.send", "n": 2})
    results = await asyncio.wait_for(asyncio.gather(first, second), 2)
    assert sorted(message["n"] for message in results) == [1, 2]


async def test_cancelled_receive_leaves_a_just_sent_message_for_the_next_receive(layer):
    waiting = asyncio.create_task(layer.receive("worker.mail"))
    await asyncio.sleep(0)
    await layer.send("worker.mail", {"type": "mail.send"})
    waiting.cancel()  # woken, but cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await receive_soon(layer, "worker.mail") == {"type": "mail.send"}


async def test_cancelled_receive_passes_its_wake_up_to_another_waiting_receiver(layer):
    cancelled = asyncio.create_task(layer.receive("worker.mail"))
    await asyncio.sleep(0)
    other = asyncio.create_task(layer.receive("worker.mail"))
    await asyncio.sleep(0)
    await layer.send("worker.mail", {"type": "mail.send"})
    cancelled.cancel()
    assert await asyncio.wait_for(other, 2) == {"type": "mail.send"}


async def test_receives_cancelled_at_random_moments_lose_and_duplicate_nothing():
    layer = InMemoryChannelLayer(capacity=1000)
    chooser = random.Random(1234)
    received: list[int] = []
    for number in range(200):
        receivers = [asyncio.create_task(layer.receive("worker.mail")) for _ in range(3)]
        await asyncio.sleep(0)
        await layer.send("worker.mail", {"type": "mail.send", "n": number})
        for receiver in receivers:
            if chooser.random() < 0.5:
                receiver.cancel()
        if chooser.random() < 0.5:
            await asyncio.sleep(0)
        for receiver in receivers:
            receiver.cancel()
        for outcome in await asyncio.gather(*receivers, return_exceptions=True):
            if isinstance(outcome, dict):
                received.append(outcome["n"])
    while len(received) < 200:
        received.append((await receive_soon(layer, "worker.mail"))["n"])
    assert sorted(received) == list(range(200))
    await assert_nothing_arrives(layer, "worker.mail")


async def test_receive_cancelled_by_a_timeout_loses_no_later_message(layer):
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive("worker.mail"), 0.01)
    await layer.send("worker.mail", {"type": "mail.send"})
    assert await receive_soon(layer, "worker.mail") == {"type": "mail.send"}


async def test_changing_a_message_after_sending_it_does_not_change_what_is_received(layer):
    message = {"type": "chat.message", "tags": ["a"]}
    await layer.send("worker.mail", message)
    message["tags"].append("b")
    assert (await receive_soon(layer, "worker.mail"))["tags"] == ["a"]


# -- capacity -----------------------------------------------------------------------------------


async def test_send_to_a_channel_at_capacity_raises_channel_full_naming_it():
    layer = InMemoryChannelLayer(capacity=2)
    await layer.send("worker.mail", {"type": "mail.send"})
    await layer.send("worker.mail", {"type": "mail.send"})
    with pytest.raises(ChannelFull, match=r"worker\.mail"):
        await layer.send("worker.mail", {"type": "mail.send"})


async def test_channel_full_leaves_the_queued_messages_deliverable():
    layer = InMemoryChannelLayer(capacity=1)
    await layer.send("worker.mail", {"type": "mail.send", "n": 1})
    with pytest.raises(ChannelFull):
        await layer.send("worker.mail", {"type": "mail.send", "n": 2})
    assert (await receive_soon(layer, "worker.mail"))["n"] == 1
    await layer.send("worker.mail", {"type": "mail.send", "n": 3})
    assert (await receive_soon(layer, "worker.mail"))["n"] == 3


async def test_channel_capacity_glob_sets_the_capacity_of_matching_channels():
    layer = InMemoryChannelLayer(capacity=5, channel_capacity={"worker.*": 1})
    await layer.send("worker.mail", {"type": "mail.send"})
    with pytest.raises(ChannelFull):
        await layer.send("worker.mail", {"type": "mail.send"})
    for _ in range(5):
        await layer.send("other", {"type": "mail.send"})


async def test_channel_capacity_accepts_compiled_regular_expressions():
    layer = InMemoryChannelLayer(channel_capacity={re.compile(r"^slow\."): 1})
    await layer.send("slow.lane", {"type": "x"})
    with pytest.raises(ChannelFull):
        await layer.send("slow.lane", {"type": "x"})


async def test_first_matching_channel_capacity_pattern_wins():
    layer = InMemoryChannelLayer(channel_capacity={"worker.mail": 1, "worker.*": 3})
    assert layer.get_capacity("worker.mail") == 1
    assert layer.get_capacity("worker.sms") == 3
    assert layer.get_capacity("chat") == 100


def test_channel_capacity_with_a_bad_key_is_refused_at_construction():
    with pytest.raises(TypeError, match="42"):
        InMemoryChannelLayer(channel_capacity={42: 1})


# -- groups -------------------------------------------------------------------------------------


async def test_group_send_reaches_every_member(layer):
    members = [await layer.new_channel() for _ in range(3)]
    for member in members:
        await layer.group_add("room.lobby", member)
    await layer.group_send("room.lobby", {"type": "chat.message", "text": "hi"})
    for member in members:
        assert await receive_soon(layer, member) == {"type": "chat.message", "text": "hi"}


async def test_group_send_to_an_empty_group_does_nothing(layer):
    await layer.group_send("room.nobody", {"type": "chat.message"})
    assert layer.stats()["dropped"] == 0


async def test_discarded_member_gets_no_more_group_messages(layer):
    member = await layer.new_channel()
    await layer.group_add("room.lobby", member)
    await layer.group_discard("room.lobby", member)
    await layer.group_send("room.lobby", {"type": "chat.message"})
    await assert_nothing_arrives(layer, member)


async def test_discarding_a_channel_that_is_not_a_member_is_harmless(layer):
    await layer.group_discard("room.lobby", "specific.x!y")


async def test_adding_a_member_twice_delivers_each_group_message_once(layer):
    member = await layer.new_channel()
    await layer.group_add("room.lobby", member)
    await layer.group_add("room.lobby", member)
    await layer.group_send("room.lobby", {"type": "chat.message"})
    await receive_soon(layer, member)
    await assert_nothing_arrives(layer, member)


async def test_full_member_misses_the_group_message_and_the_others_get_it():
    layer = InMemoryChannelLayer(capacity=1)
    slow, fast = await layer.new_channel(), await layer.new_channel()
    for member in (slow, fast):
        await layer.group_add("room.lobby", member)
    await layer.send(slow, {"type": "chat.message", "n": 0})
    await layer.group_send("room.lobby", {"type": "chat.message", "n": 1})
    assert (await receive_soon(layer, fast))["n"] == 1
    assert (await receive_soon(layer, slow))["n"] == 0
    await assert_nothing_arrives(layer, slow)


async def test_stats_count_group_messages_dropped_for_full_members():
    layer = InMemoryChannelLayer(capacity=1)
    member = await layer.new_channel()
    await layer.group_add("room.lobby", member)
    for _ in range(3):
        await layer.group_send("room.lobby", {"type": "chat.message"})
    assert layer.stats()["dropped"] == 2


async def test_group_members_receive_independent_copies(layer):
    first, second = await layer.new_channel(), await layer.new_channel()
    for member in (first, second):
        await layer.group_add("room.lobby", member)
    await layer.group_send("room.lobby", {"type": "chat.message", "seen_by": []})
    (await receive_soon(layer, first))["seen_by"].append("first")
    assert (await receive_soon(layer, second))["seen_by"] == []


async def test_a_channel_can_belong_to_several_groups(layer):
    member = await layer.new_channel()
    await layer.group_add("room.a", member)
    await layer.group_add("room.b", member)
    await layer.group_send("room.a", {"type": "chat.message", "room": "a"})
    await layer.group_send("room.b", {"type": "chat.message", "room": "b"})
    assert [(await receive_soon(layer, member))["room"] for _ in range(2)] == ["a", "b"]


# -- expiry -------------------------------------------------------------------------------------


async def test_message_not_received_within_expiry_is_never_delivered():
    layer = InMemoryChannelLayer(expiry=0.05)
    await layer.send("worker.mail", {"type": "mail.send", "n": 1})
    await asyncio.sleep(0.1)
    await layer.send("worker.mail", {"type": "mail.send", "n": 2})
    assert (await receive_soon(layer, "worker.mail"))["n"] == 2
    assert layer.stats()["expired"] == 1


async def test_expired_messages_free_capacity_for_new_ones():
    layer = InMemoryChannelLayer(expiry=0.05, capacity=1)
    await layer.send("worker.mail", {"type": "mail.send"})
    await asyncio.sleep(0.1)
    await layer.send("worker.mail", {"type": "mail.send"})


async def test_channel_whose_group_message_expired_unread_leaves_its_groups():
    layer = InMemoryChannelLayer(expiry=0.05)
    abandoned = await layer.new_channel()
    await layer.group_add("room.lobby", abandoned)
    await layer.group_send("room.lobby", {"type": "chat.message", "n": 1})
    await asyncio.sleep(0.1)
    await layer.group_send("room.lobby", {"type": "chat.message", "n": 2})
    await assert_nothing_arrives(layer, abandoned)


async def test_channel_that_reads_its_expired_messages_keeps_its_groups():
    layer = InMemoryChannelLayer(expiry=0.05)
    member = await layer.new_channel()
    await layer.group_add("room.lobby", member)
    await layer.group_send("room.lobby", {"type": "chat.message", "n": 1})
    await asyncio.sleep(0.1)
    await assert_nothing_arrives(layer, member)  # the stale message is dropped, not delivered
    await layer.group_send("room.lobby", {"type": "chat.message", "n": 2})
    assert (await receive_soon(layer, member))["n"] == 2


async def test_membership_older_than_group_expiry_ends():
    layer = InMemoryChannelLayer(group_expiry=0.05)
    member = await layer.new_channel()
    await layer.group_add("room.lobby", member)
    await asyncio.sleep(0.1)
    await layer.group_send("room.lobby", {"type": "chat.message"})
    await assert_nothing_arrives(layer, member)


async def test_adding_again_renews_a_membership():
    layer = InMemoryChannelLayer(group_expiry=0.6)
    member = await layer.new_channel()
    await layer.group_add("room.lobby", member)
    await asyncio.sleep(0.35)
    await layer.group_add("room.lobby", member)
    await asyncio.sleep(0.35)
    await layer.group_send("room.lobby", {"type": "chat.message"})
    assert await receive_soon(layer, member) == {"type": "chat.message"}


async def test_channels_nobody_reads_are_forgotten_after_expiry():
    layer = InMemoryChannelLayer(expiry=0.05)
    for number in range(10):
        await layer.send(f"worker.abandoned{number}", {"type": "mail.send"})
    assert layer.stats()["channels"] == 10
    await asyncio.sleep(0.1)
    await layer.send("worker.mail", {"type": "mail.send"})
    assert layer.stats()["channels"] == 1


# -- names and messages -------------------------------------------------------------------------


async def test_new_channel_names_are_process_local_and_unique(layer):
    names = {await layer.new_channel() for _ in range(100)}
    assert len(names) == 100
    for name in names:
        assert re.fullmatch(r"specific\.[0-9a-f]+![0-9a-f]+", name)


async def test_new_channel_uses_the_given_prefix(layer):
    assert (await layer.new_channel(prefix="chat")).startswith("chat.")


async def test_new_channel_prefix_with_a_bang_is_refused(layer):
    with pytest.raises(TypeError, match="a!b"):
        await layer.new_channel(prefix="a!b")


@pytest.mark.parametrize(
    "name",
    ["with space", "x" * 100, "ünïcode", "two!bangs!", "", "slash/name", "newline\n", 42, None],
    ids=["space", "too-long", "non-ascii", "two-bangs", "empty", "slash", "newline", "int", "none"],
)
async def test_send_to_an_invalid_channel_name_raises_type_error_naming_it(layer, name):
    with pytest.raises(TypeError, match=re.escape(repr(name))):
        await layer.send(name, {"type": "x"})


@pytest.mark.parametrize("name", ["with space", "group!local", "x" * 100])
async def test_group_operations_refuse_invalid_group_names(layer, name):
    for operation in (
        layer.group_add(name, "specific.a!b"),
        layer.group_discard(name, "specific.a!b"),
        layer.group_send(name, {"type": "x"}),
    ):
        with pytest.raises(TypeError, match=re.escape(repr(name))):
            await operation


NAME_ALPHABET = string.ascii_letters + string.digits + "-_."


@given(name=st.text(alphabet=NAME_ALPHABET, min_size=1, max_size=99))
def test_every_name_of_allowed_characters_is_a_valid_channel_and_group_name(name):
    layer = InMemoryChannelLayer()
    assert layer.require_valid_channel_name(name)
    assert layer.require_valid_group_name(name)
    assert layer.require_valid_channel_name(f"{name[:49]}!{name[:49]}")


@given(
    name=st.text(min_size=1, max_size=99).filter(
        lambda text: any(char not in NAME_ALPHABET + "!" for char in text)
    )
)
@example(name="room\n")
def test_every_name_with_another_character_is_refused(name):
    layer = InMemoryChannelLayer()
    with pytest.raises(TypeError):
        layer.require_valid_channel_name(name)
    with pytest.raises(TypeError):
        layer.require_valid_group_name(name)


async def test_name_of_99_characters_is_accepted(layer):
    await layer.send("x" * 99, {"type": "x"})


@pytest.mark.parametrize("message", ["text", ["type", "x"], None], ids=["str", "list", "none"])
async def test_message_that_is_not_a_dict_raises_type_error_naming_it(layer, message):
    with pytest.raises(TypeError, match="Message must be a dict"):
        await layer.send("worker.mail", message)
    with pytest.raises(TypeError, match="Message must be a dict"):
        await layer.group_send("room.lobby", message)


async def test_message_without_a_type_is_refused(layer):
    with pytest.raises(TypeError, match="'type'"):
        await layer.send("worker.mail", {"text": "hi"})


# -- flush, loops and threads -------------------------------------------------------------------


async def test_flush_forgets_queued_messages_and_groups(layer):
    member = await layer.new_channel()
    await layer.group_add("room.lobby", member)
    await layer.send("worker.mail", {"type": "mail.send"})
    await layer.flush()
    await layer.group_send("room.lobby", {"type": "chat.message"})
    await assert_nothing_arrives(layer, member)
    await assert_nothing_arrives(layer, "worker.mail")


async def test_receiver_waiting_across_a_flush_gets_later_messages(layer):
    waiting = asyncio.create_task(layer.receive("worker.mail"))
    await asyncio.sleep(0)
    await layer.flush()
    await layer.send("worker.mail", {"type": "mail.send"})
    assert await asyncio.wait_for(waiting, 2) == {"type": "mail.send"}


async def test_send_from_sync_code_in_another_thread_wakes_a_waiting_receiver(layer):
    waiting = asyncio.create_task(layer.receive("worker.mail"))
    await asyncio.sleep(0)

    def sync_view() -> None:
        async_to_sync(layer.send)("worker.mail", {"type": "mail.send"})

    thread = threading.Thread(target=sync_view)
    thread.start()
    assert await asyncio.wait_for(waiting, 2) == {"type": "mail.send"}
    thread.join()


async def test_group_send_from_a_sync_thread_wakes_every_member_waiting_here(layer):
    members = [await layer.new_channel() for _ in range(20)]
    for member in members:
        await layer.group_add("room.lobby", member)
    waiting = [asyncio.create_task(layer.receive(member)) for member in members]
    await asyncio.sleep(0)

    def sync_signal_handler() -> None:
        async_to_sync(layer.group_send)("room.lobby", {"type": "chat.message", "text": "hi"})

    await asyncio.to_thread(sync_signal_handler)
    results = await asyncio.wait_for(asyncio.gather(*waiting), 2)
    assert results == [{"type": "chat.message", "text": "hi"}] * len(members)


async def test_concurrent_senders_in_other_threads_lose_nothing_and_keep_their_order():
    layer = InMemoryChannelLayer(capacity=1000)
    senders, per_sender = 4, 100

    def sender(number: int) -> None:
        for sequence in range(per_sender):
            async_to_sync(layer.send)("worker.mail", {"type": "x", "from": number, "seq": sequence})

    threads = [threading.Thread(target=sender, args=(number,)) for number in range(senders)]
    for thread in threads:
        thread.start()
    received: dict[int, list[int]] = {number: [] for number in range(senders)}
    for _ in range(senders * per_sender):
        message = await receive_soon(layer, "worker.mail")
        received[message["from"]].append(message["seq"])
    for thread in threads:
        thread.join()
    assert received == {number: list(range(per_sender)) for number in range(senders)}


async def test_receivers_waiting_in_two_event_loops_each_get_one_message(layer):
    other_loop_result: list[dict] = []
    other_waiting = threading.Event()

    def other_loop_receiver() -> None:
        async def receive() -> None:
            task = asyncio.create_task(layer.receive("worker.mail"))
            await asyncio.sleep(0)
            other_waiting.set()
            other_loop_result.append(await asyncio.wait_for(task, 2))

        asyncio.run(receive())

    thread = threading.Thread(target=other_loop_receiver)
    thread.start()
    await asyncio.to_thread(other_waiting.wait, 2)
    here = asyncio.create_task(layer.receive("worker.mail"))
    await asyncio.sleep(0)
    await layer.send("worker.mail", {"type": "x", "n": 1})
    await layer.send("worker.mail", {"type": "x", "n": 2})
    mine = await asyncio.wait_for(here, 2)
    await asyncio.to_thread(thread.join, 2)
    assert sorted([mine["n"], other_loop_result[0]["n"]]) == [1, 2]


def test_message_sent_in_one_event_loop_is_received_in_another():
    layer = InMemoryChannelLayer()
    asyncio.run(layer.send("worker.mail", {"type": "mail.send"}))
    assert asyncio.run(layer.receive("worker.mail")) == {"type": "mail.send"}


async def test_stats_report_the_counters_metrics_need(layer):
    await layer.send("worker.mail", {"type": "mail.send"})
    await layer.group_add("room.lobby", "specific.a!b")
    assert layer.stats() == {"dropped": 0, "expired": 0, "channels": 1, "groups": 1, "queued": 1}


def test_extensions_are_groups_and_flush(layer):
    assert layer.extensions == ["groups", "flush"]
