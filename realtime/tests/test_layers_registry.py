"""The CHANNEL_LAYERS registry, get_channel_layer(), and the Channel/Group handles."""

import asyncio

import pytest
from asgiref.sync import async_to_sync

from realtime.exceptions import InvalidChannelLayerError
from realtime.layers import Channel, Group, channel_layers, get_channel_layer
from realtime.layers.memory import InMemoryChannelLayer

MEMORY = "realtime.layers.memory.InMemoryChannelLayer"


@pytest.fixture
def memory_layers(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": MEMORY},
        "small": {"BACKEND": MEMORY, "CONFIG": {"capacity": 3, "expiry": 5}},
    }
    return settings


# -- the registry -------------------------------------------------------------------------------


def test_get_channel_layer_returns_none_when_channel_layers_is_not_set(settings):
    del settings.CHANNEL_LAYERS
    assert get_channel_layer() is None


def test_get_channel_layer_returns_none_for_an_unknown_alias(memory_layers):
    assert get_channel_layer("nonexistent") is None


def test_get_channel_layer_builds_the_configured_backend(memory_layers):
    assert isinstance(get_channel_layer(), InMemoryChannelLayer)


def test_channels_style_backend_path_works(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "realtime.layers.InMemoryChannelLayer"}}
    assert isinstance(get_channel_layer(), InMemoryChannelLayer)


def test_config_is_passed_to_the_backend(memory_layers):
    layer = get_channel_layer("small")
    assert (layer.capacity, layer.expiry) == (3, 5)


def test_each_alias_has_its_own_layer_and_keeps_it(memory_layers):
    assert get_channel_layer("default") is get_channel_layer("default")
    assert get_channel_layer("default") is not get_channel_layer("small")


def test_changing_channel_layers_setting_builds_a_new_layer(settings, memory_layers):
    before = get_channel_layer()
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": MEMORY, "CONFIG": {"capacity": 7}}}
    after = get_channel_layer()
    assert after is not before
    assert after.capacity == 7


def test_missing_backend_raises_invalid_channel_layer_error(settings):
    settings.CHANNEL_LAYERS = {"default": {"CONFIG": {}}}
    with pytest.raises(InvalidChannelLayerError, match="No BACKEND specified for default"):
        get_channel_layer()


def test_unimportable_backend_raises_invalid_channel_layer_error_naming_it(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "realtime.layers.nowhere.Layer"}}
    with pytest.raises(InvalidChannelLayerError, match=r"realtime\.layers\.nowhere\.Layer"):
        get_channel_layer()


def test_config_the_backend_does_not_accept_raises_invalid_channel_layer_error(settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": MEMORY, "CONFIG": {"capacty": 5}}}
    with pytest.raises(InvalidChannelLayerError, match="capacty"):
        get_channel_layer()


def test_alias_entry_that_is_not_a_dict_raises_invalid_channel_layer_error(settings):
    settings.CHANNEL_LAYERS = {"default": MEMORY}
    with pytest.raises(InvalidChannelLayerError, match="must be a dict"):
        get_channel_layer()


def test_invalid_channel_layer_error_is_a_value_error():
    assert issubclass(InvalidChannelLayerError, ValueError)


def test_test_config_builds_a_separate_layer(settings):
    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": MEMORY, "TEST_CONFIG": {"capacity": 2}},
    }
    assert channel_layers.make_test_backend("default").capacity == 2


def test_set_swaps_the_layer_of_an_alias(memory_layers):
    replacement = InMemoryChannelLayer()
    channel_layers.set("default", replacement)
    assert get_channel_layer() is replacement


async def test_channels_redis_works_as_a_backend(settings, redis_server):
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [redis_server.url], "prefix": "registry-test"},
        }
    }
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await Group("registry.test", channel_layer=layer).add(channel)
    await Group("registry.test").send({"type": "chat.message", "text": "hi"})
    assert await asyncio.wait_for(layer.receive(channel), 5) == {
        "type": "chat.message",
        "text": "hi",
    }
    await layer.flush()
    await layer.close_pools()


# -- Channel and Group handles ------------------------------------------------------------------


async def test_channel_handle_sends_on_the_default_layer(memory_layers):
    await Channel("worker.mail").send({"type": "mail.send"})
    assert await get_channel_layer().receive("worker.mail") == {"type": "mail.send"}


async def test_handles_use_the_given_alias(memory_layers):
    await Channel("worker.mail", alias="small").send({"type": "mail.send"})
    assert await get_channel_layer("small").receive("worker.mail") == {"type": "mail.send"}


async def test_group_handle_adds_sends_and_discards(memory_layers):
    layer = get_channel_layer()
    member = await layer.new_channel()
    group = Group("room.lobby")
    await group.add(member)
    await group.send({"type": "chat.message", "n": 1})
    assert await layer.receive(member) == {"type": "chat.message", "n": 1}
    await group.discard(Channel(member))
    await group.send({"type": "chat.message", "n": 2})
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(layer.receive(member), 0.05)


async def test_sync_variants_work_from_a_sync_view_thread(memory_layers):
    layer = get_channel_layer()
    member = await layer.new_channel()

    def sync_view() -> None:
        Group("room.lobby").add_sync(member)
        Group("room.lobby").send_sync({"type": "chat.message", "via": "group"})
        Channel(member).send_sync({"type": "chat.message", "via": "channel"})

    await asyncio.to_thread(sync_view)
    assert [(await layer.receive(member))["via"] for _ in range(2)] == ["group", "channel"]


async def test_sync_variant_inside_an_event_loop_raises_instead_of_blocking(memory_layers):
    with pytest.raises(RuntimeError, match="async"):
        Channel("worker.mail").send_sync({"type": "mail.send"})


def test_sync_variants_work_without_any_event_loop(memory_layers):
    Channel("worker.mail").send_sync({"type": "mail.send"})
    assert async_to_sync(get_channel_layer().receive)("worker.mail") == {"type": "mail.send"}


async def test_handle_without_a_configured_layer_raises_naming_the_alias(settings):
    del settings.CHANNEL_LAYERS
    with pytest.raises(InvalidChannelLayerError, match="'default'"):
        await Group("room.lobby").send({"type": "chat.message"})


async def test_group_handle_refuses_a_layer_without_groups(memory_layers):
    class ChannelsOnly(InMemoryChannelLayer):
        extensions = ["flush"]

    with pytest.raises(InvalidChannelLayerError, match="groups"):
        await Group("room.lobby", channel_layer=ChannelsOnly()).send({"type": "x"})


def test_handles_with_the_same_name_and_alias_are_equal():
    assert Group("room.lobby") == Group("room.lobby")
    assert Group("room.lobby") != Group("room.lobby", alias="other")
    assert Channel("a") != Group("a")
