"""The small differences that would break ported Channels 4 code: as_asgi() keywords a consumer's
own __init__ takes, the deprecated name checks and AsgiHandler, and the error texts Channels
users match on."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from django.urls import re_path

from realtime.consumer import AsyncConsumer
from realtime.generic.websocket import AsyncWebsocketConsumer
from realtime.layers import BaseChannelLayer
from realtime.routing import URLRouter
from realtime.testing import HttpCommunicator, WebsocketCommunicator


@pytest.fixture(autouse=True)
def no_layer(settings: Any) -> None:
    settings.CHANNEL_LAYERS = {}


# as_asgi(**initkwargs) --------------------------------------------------------------------------


class RoomConsumer(AsyncWebsocketConsumer):
    def __init__(self, *args: Any, room: str = "lobby", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.room = room

    async def connect(self) -> None:
        await self.accept()
        await self.send(text_data=self.room)


async def test_as_asgi_passes_keywords_the_consumers_own_init_takes() -> None:
    communicator = WebsocketCommunicator(RoomConsumer.as_asgi(room="kitchen"), "/")
    await communicator.connect()
    assert await communicator.receive_from() == "kitchen"
    await communicator.disconnect()


class ForwardingConsumer(AsyncConsumer):
    # Channels' usual spelling: everything goes to super(), the subclass reads what it wants.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.label = kwargs.get("label", "none")
        super().__init__(*args, **kwargs)


def test_an_init_that_forwards_kwargs_gets_them_without_an_error() -> None:
    assert ForwardingConsumer(label="x").label == "x"
    assert ForwardingConsumer.as_asgi(label="x").consumer_initkwargs == {"label": "x"}


class StrictRoomConsumer(AsyncConsumer):
    def __init__(self, room: str = "lobby") -> None:
        super().__init__()
        self.room = room


def test_as_asgi_still_refuses_a_typo_naming_what_init_takes() -> None:
    with pytest.raises(TypeError, match=r"invalid keyword 'rooom'.*__init__ takes \(\['room'\]\)"):
        StrictRoomConsumer.as_asgi(rooom="x")
    with pytest.raises(TypeError, match="invalid keyword 'rooom'"):
        AsyncConsumer.as_asgi(rooom="x")


# Name checks ----------------------------------------------------------------------------------------


def test_deprecated_name_checks_still_work_and_warn() -> None:
    layer = BaseChannelLayer()
    with pytest.warns(DeprecationWarning, match="use require_valid_channel_name"):
        assert layer.valid_channel_name("chat.lobby") is True
    with pytest.warns(DeprecationWarning, match="use require_valid_group_name"):
        assert layer.valid_group_name("lobby") is True
    with pytest.warns(DeprecationWarning), pytest.raises(TypeError):
        layer.valid_group_name("no spaces")


@pytest.mark.parametrize(
    ("check", "text"),
    [
        (
            lambda layer: layer.require_valid_channel_name("bad name"),
            "Channel name must be a valid unicode string with length < 100 containing only "
            "ASCII alphanumerics, hyphens, underscores, or periods",
        ),
        (
            lambda layer: layer.require_valid_group_name("bad name"),
            "Group name must be a valid unicode string with length < 100 containing only "
            "ASCII alphanumerics, hyphens, underscores, or periods",
        ),
        (
            lambda layer: layer.require_valid_channel_name("a!b", receive=True),
            "Specific channel names in receive() must end at the !",
        ),
    ],
)
def test_name_check_errors_keep_channels_wording(check: Any, text: str) -> None:
    with pytest.raises(TypeError) as error:
        check(BaseChannelLayer())
    assert str(error.value).startswith(text)


# AsgiHandler --------------------------------------------------------------------------------------


async def test_asgi_handler_serves_django_in_both_spellings_with_a_deprecation_warning() -> None:
    from realtime.http import AsgiHandler

    for application in (AsgiHandler, "instance"):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            app = AsgiHandler() if application == "instance" else AsgiHandler
            router = URLRouter([re_path(r"", app)])
            response = await HttpCommunicator(router, "GET", "/no-such-page/").get_response(
                timeout=30
            )
        assert response["status"] == 404  # Django's own 404 page: Django answered
        assert any(issubclass(w.category, DeprecationWarning) for w in caught)
