"""Presence: who is in a room, in one process or, through Redis, across processes."""

import asyncio
import json

import pytest

from chat.presence import Presence


async def test_user_with_two_connections_is_listed_once_until_both_leave(settings):
    settings.REDIS_URL = ""
    presence = Presence()
    await presence.join("general", "c1", "alice")
    await presence.join("general", "c2", "alice")
    await presence.join("general", "c3", "bob")
    assert await presence.users("general") == ["alice", "bob"]
    await presence.leave("general", "c1", "alice")
    assert await presence.users("general") == ["alice", "bob"]
    await presence.leave("general", "c2", "alice")
    assert await presence.users("general") == ["bob"]


async def test_rooms_are_separate(settings):
    settings.REDIS_URL = ""
    presence = Presence()
    await presence.join("general", "c1", "alice")
    assert await presence.users_in(["general", "random"]) == {"general": ["alice"], "random": []}


async def test_two_processes_see_each_others_users_through_redis(settings, fresh_redis):
    settings.REDIS_URL = fresh_redis.url
    process_a, process_b = Presence(), Presence()
    await process_a.join("general", "a1", "alice")
    await process_b.join("general", "b1", "bob")
    assert await process_a.users("general") == ["alice", "bob"]
    await process_b.leave("general", "b1", "bob")
    assert await process_a.users("general") == ["alice"]


async def test_connections_of_a_dead_process_expire(settings, fresh_redis):
    settings.REDIS_URL = fresh_redis.url
    settings.CHAT_PRESENCE_TTL_SECONDS = 0.05  # the heartbeat stops: its process died
    dead = Presence()
    await dead.join("general", "d1", "ghost")
    await asyncio.sleep(0.1)  # the entry's time runs out
    settings.CHAT_PRESENCE_TTL_SECONDS = 90
    alive = Presence()
    await alive.join("general", "a1", "alice")
    assert await alive.users("general") == ["alice"]


@pytest.mark.parametrize("username", ["with space", "ünïcode", "a\x1fb"])
async def test_unusual_usernames_survive_the_redis_round_trip(settings, fresh_redis, username):
    settings.REDIS_URL = fresh_redis.url
    presence = Presence()
    await presence.join("general", "c1", username)
    assert await presence.users("general") == [username]


async def test_a_burst_of_joins_shares_a_few_redis_connections(settings, fresh_redis):
    """200 sockets joining at once wait for a pooled connection instead of opening 200."""

    import redis.asyncio

    from chat.redis_connection import MAX_CONNECTIONS

    settings.REDIS_URL = fresh_redis.url
    presence = Presence()
    await asyncio.gather(*(presence.join("general", f"c{n}", f"user{n}") for n in range(200)))
    assert len(await presence.users("general")) == 200
    observer = redis.asyncio.Redis.from_url(fresh_redis.url)
    clients = await observer.client_list()
    await observer.aclose()
    assert len(clients) <= MAX_CONNECTIONS + 1  # the pool, and the observer itself


async def test_a_sweep_names_each_room_that_lost_a_dead_connection_once(settings, fresh_redis):
    settings.REDIS_URL = fresh_redis.url
    settings.CHAT_PRESENCE_TTL_SECONDS = 0.05  # the heartbeat stops: its process died
    dead = Presence()
    await dead.join("general", "d1", "ghost")
    await dead.join("random", "d2", "ghost")
    await asyncio.sleep(0.1)  # the entries' time runs out
    settings.CHAT_PRESENCE_TTL_SECONDS = 90
    alive, other = Presence(), Presence()
    await alive.join("general", "a1", "alice")
    assert await alive.users("general") == ["alice"]  # readers skip the expired entry at once
    assert await alive.sweep(["general", "random", "quiet"]) == ["general", "random"]
    assert await other.sweep(["general", "random"]) == []  # already swept: announced once
    assert await alive.users_in(["general", "random"]) == {"general": ["alice"], "random": []}


async def test_without_redis_presence_answers_from_this_process_and_never_raises(
    settings, fresh_redis
):
    """Redis stops: joining, leaving, reading and sweeping go on, from this process's own view
    of the rooms (presence degrades; the chat does not break)."""
    settings.REDIS_URL = fresh_redis.url
    presence = Presence()
    await presence.join("general", "c1", "alice")
    fresh_redis.stop()
    await presence.join("general", "c2", "bob")
    assert await presence.users("general") == ["alice", "bob"]
    await presence.leave("general", "c1", "alice")
    assert await presence.users_in(["general"]) == {"general": ["bob"]}
    assert await presence.sweep(["general"]) == []


async def test_an_announcement_the_layer_refuses_is_logged_not_raised(settings, caplog):
    from chat.presence import PresenceAnnouncer

    settings.REDIS_URL = ""

    class BrokenLayer:
        async def group_send(self, group, message):
            raise ConnectionError("layer down")

    announcer = PresenceAnnouncer()
    announcer.changed(BrokenLayer(), "general")
    task = announcer._pending["general"]
    await asyncio.wait_for(task, 2)  # finishes instead of raising
    assert "could not announce presence in general" in caplog.text
    assert announcer._pending == {}


async def test_a_rooms_presence_set_outlives_the_gap_between_two_heartbeats(settings, fresh_redis):
    """The set's own expiry is a clean-up for rooms nobody watches: it must never remove a live
    member between two heartbeats."""
    import redis.asyncio

    settings.REDIS_URL = fresh_redis.url
    await Presence().join("general", "c1", "alice")
    observer = redis.asyncio.Redis.from_url(fresh_redis.url)
    remaining_ms = await observer.pttl(Presence._key("general"))
    await observer.aclose()
    heartbeat_ms = settings.CHAT_PRESENCE_HEARTBEAT_SECONDS * 1000
    assert remaining_ms > heartbeat_ms + settings.CHAT_PRESENCE_TTL_SECONDS * 1000


async def test_changes_in_quick_succession_are_announced_once(settings):
    from chat import protocol
    from chat.presence import PresenceAnnouncer

    settings.REDIS_URL = ""
    sent: list[tuple[str, dict]] = []

    class RecordingLayer:
        async def group_send(self, group, message):
            sent.append((group, message))

    layer, announcer = RecordingLayer(), PresenceAnnouncer()
    for _ in range(5):
        announcer.changed(layer, "general")
    await asyncio.wait_for(announcer._pending["general"], 2)
    assert [group for group, _ in sent] == [protocol.room_group("general"), protocol.ADMIN_GROUP]
    announcer.changed(layer, "general")  # a change after the announcement is announced again
    await asyncio.wait_for(announcer._pending["general"], 2)
    assert len(sent) == 4


async def test_joins_made_together_see_each_other_in_the_order_they_were_made(
    settings, fresh_redis
):
    """Joins of one reconnect burst share a pipeline; each still sees the room as it was just
    before it, with the joins made earlier in the burst."""
    settings.REDIS_URL = fresh_redis.url
    presence = Presence()
    await presence.join("general", "c0", "zoe")
    results = await asyncio.gather(
        *(presence.join_and_list("general", f"c{n}", name) for n, name in enumerate("abc", 1))
    )
    assert results == [
        (["zoe"], ["a", "zoe"]),
        (["a", "zoe"], ["a", "b", "zoe"]),
        (["a", "b", "zoe"], ["a", "b", "c", "zoe"]),
    ]
    assert await Presence().users("general") == ["a", "b", "c", "zoe"]


async def test_a_burst_of_2000_joins_is_answered_from_redis_not_from_the_process(
    settings, fresh_redis, caplog
):
    """A reconnect storm's joins do not wait past the pool's timeout and fall back to this
    process's view: another process sees every one of them."""
    settings.REDIS_URL = fresh_redis.url
    presence = Presence()
    await asyncio.gather(
        *(presence.join_and_list(f"room{n % 100}", f"c{n}", f"user{n}") for n in range(2000))
    )
    assert "Redis unavailable" not in caplog.text
    seen = await Presence().users_in([f"room{r}" for r in range(100)])
    assert sum(len(users) for users in seen.values()) == 2000


async def test_a_room_announced_a_moment_ago_is_announced_again_only_after_the_interval(
    settings, monkeypatch
):
    """In a reconnect storm a room's list goes out about once per interval, not after every
    join; the last announcement still has every change."""
    from chat import presence as presence_module
    from chat import protocol
    from chat.presence import PresenceAnnouncer

    settings.REDIS_URL = ""
    monkeypatch.setattr(presence_module, "PRESENCE_COALESCE_SECONDS", 0.01)
    monkeypatch.setattr(presence_module, "PRESENCE_MIN_INTERVAL_SECONDS", 0.3)
    sent: list[tuple[float, list[str]]] = []
    loop = asyncio.get_running_loop()

    class RecordingLayer:
        async def group_send(self, group, message):
            if group == protocol.room_group("general"):
                sent.append((loop.time(), json.loads(message["text"])["users"]))

    layer, announcer = RecordingLayer(), PresenceAnnouncer()
    await presence_module.presence.join("general", "c1", "ann")
    announcer.changed(layer, "general")
    await asyncio.wait_for(announcer._pending["general"], 2)
    await presence_module.presence.join("general", "c2", "ben")
    announcer.changed(layer, "general")  # right after an announcement: waits for the interval
    await asyncio.wait_for(announcer._pending["general"], 2)
    assert [users for _, users in sent] == [["ann"], ["ann", "ben"]]
    assert sent[1][0] - sent[0][0] >= 0.29  # a sleep never ends early
    await presence_module.presence.leave("general", "c1", "ann")
    announcer.changed(layer, "general")
    await asyncio.wait_for(announcer._pending["general"], 2)
    assert [users for _, users in sent[2:]] == [["ben"]]
