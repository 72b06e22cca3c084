"""OriginValidator and AllowedHostsOriginValidator: who may open a socket or call an endpoint."""

import pytest

from realtime.security import AllowedHostsOriginValidator, OriginValidator
from realtime.testing import ApplicationCommunicator, HttpCommunicator, WebsocketCommunicator


async def accepting_app(scope, receive, send):
    """Accepts any websocket; answers any HTTP request with 200 "ok"."""
    if scope["type"] == "websocket":
        message = await receive()
        assert message["type"] == "websocket.connect"
        await send({"type": "websocket.accept"})
        await receive()
    elif scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    else:
        await send({"type": "passed.through", "scope_type": scope["type"]})


async def websocket_accepted(application, origin: str | None) -> bool:
    headers = [(b"origin", origin.encode())] if origin is not None else []
    communicator = WebsocketCommunicator(application, "/ws/chat/", headers=headers)
    connected, _ = await communicator.connect()
    if connected:
        await communicator.disconnect()
    else:
        await communicator.wait()
    return connected


def validator(*allowed: str) -> OriginValidator:
    return OriginValidator(accepting_app, list(allowed))


# -- the basic cases ----------------------------------------------------------------------------


async def test_websocket_from_an_allowed_origin_is_accepted():
    assert await websocket_accepted(validator("example.com"), "http://example.com")


async def test_websocket_from_another_origin_is_refused_before_accept():
    communicator = WebsocketCommunicator(
        validator("example.com"), "/ws/chat/", headers=[(b"origin", b"http://evil.example.net")]
    )
    await communicator.send_input({"type": "websocket.connect"})
    assert await communicator.receive_output() == {"type": "websocket.close"}
    await communicator.wait()


async def test_websocket_without_an_origin_header_is_refused():
    assert not await websocket_accepted(validator("example.com"), None)


async def test_websocket_with_a_null_origin_is_refused():
    assert not await websocket_accepted(validator("example.com"), "null")


async def test_missing_origin_is_accepted_when_explicitly_allowed():
    application = OriginValidator(accepting_app, ["example.com"], allow_missing_origin=True)
    assert await websocket_accepted(application, None)


async def test_star_allows_any_origin_and_a_missing_one():
    assert await websocket_accepted(validator("*"), "http://anything.example.org")
    assert await websocket_accepted(validator("*"), None)


async def test_http_request_from_another_origin_gets_403():
    communicator = HttpCommunicator(
        validator("example.com"), "POST", "/api/", headers=[(b"origin", b"http://evil.test")]
    )
    response = await communicator.get_response()
    assert response["status"] == 403


async def test_http_request_from_an_allowed_origin_reaches_the_application():
    communicator = HttpCommunicator(
        validator("example.com"), "POST", "/api/", headers=[(b"origin", b"https://example.com")]
    )
    response = await communicator.get_response()
    assert (response["status"], response["body"]) == (200, b"ok")


async def test_other_scope_types_pass_through_unchecked():
    communicator = ApplicationCommunicator(validator("example.com"), {"type": "aprs"})
    assert await communicator.receive_output() == {"type": "passed.through", "scope_type": "aprs"}


# -- patterns -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "origin", "allowed"),
    [
        ("example.com", "http://example.com:8000", True),
        ("example.com", "https://example.com", True),
        ("example.com", "http://www.example.com", False),
        ("example.com", "http://example.com.evil.net", False),
        (".example.com", "http://example.com", True),
        (".example.com", "https://chat.eu.example.com", True),
        (".example.com", "http://notexample.com", False),
        ("EXAMPLE.com", "http://Example.COM", True),
        ("example.com:8000", "http://example.com:8000", True),
        ("example.com:8000", "http://example.com:9000", False),
        ("example.com:80", "http://example.com", True),
        ("http://example.com", "http://example.com", True),
        ("http://example.com", "http://example.com:80", True),
        ("http://example.com", "https://example.com", False),
        ("http://example.com", "http://example.com:8000", False),
        ("https://example.com:8443", "https://example.com:8443", True),
        ("https://.example.com", "https://a.example.com", True),
        ("https://.example.com", "https://a.example.com:444", False),
        ("127.0.0.1", "http://127.0.0.1:8000", True),
        ("[::1]", "http://[::1]:8000", True),
        ("[::1]", "http://127.0.0.1", False),
        ("example.com", "example.com", False),
        ("example.com", "http://example.com:notaport", False),
    ],
)
async def test_origin_patterns_match_like_allowed_hosts(pattern, origin, allowed):
    assert await websocket_accepted(validator(pattern), origin) is allowed


async def test_any_of_several_patterns_may_match():
    application = validator("example.com", "http://localhost:8000")
    assert await websocket_accepted(application, "http://localhost:8000")
    assert await websocket_accepted(application, "http://example.com")
    assert not await websocket_accepted(application, "http://localhost:9000")


@pytest.mark.parametrize(
    ("pattern", "origin", "allowed"),
    [
        ("https://chat.example.com", "https://chat.example.com", True),
        ("https://chat.example.com", "https://chat.example.com:443", True),
        ("https://chat.example.com", "http://chat.example.com", False),
        ("https://chat.example.com", "https://chat.example.com:8443", False),
        ("https://chat.example.com", "https://evil.chat.example.com", False),
        ("https://.example.com", "https://chat.example.com", True),
        ("https://*.example.com", "https://chat.example.com", True),  # CSRF_TRUSTED_ORIGINS' form
        ("https://*.example.com", "http://chat.example.com", False),
        # A plain host entry, which accepts any scheme and port when not strict, counts for nothing.
        ("chat.example.com", "https://chat.example.com", False),
        ("chat.example.com", "http://chat.example.com:8000", False),
        ("*", "http://anything.example", True),
    ],
)
async def test_strict_mode_wants_scheme_host_and_port_to_match(pattern, origin, allowed):
    application = OriginValidator(accepting_app, [pattern], strict=True)
    assert await websocket_accepted(application, origin) is allowed


# -- AllowedHostsOriginValidator ----------------------------------------------------------------


async def test_allowed_hosts_validator_follows_allowed_hosts(settings):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    application = AllowedHostsOriginValidator(accepting_app)
    assert await websocket_accepted(application, "https://chat.example.com")
    assert not await websocket_accepted(application, "http://127.0.0.1:8000")


async def test_allowed_hosts_validator_in_strict_mode_allows_exactly_the_listed_origins(settings):
    settings.ALLOWED_HOSTS = ["chat.example.com"]
    settings.REALTIME_STRICT_ORIGINS = True
    settings.REALTIME_ALLOWED_ORIGINS = ["https://chat.example.com"]
    application = AllowedHostsOriginValidator(accepting_app)
    assert await websocket_accepted(application, "https://chat.example.com")
    assert not await websocket_accepted(application, "http://chat.example.com")
    assert not await websocket_accepted(application, "https://chat.example.com:8443")


async def test_allowed_hosts_validator_reads_the_setting_at_each_connection(settings):
    application = AllowedHostsOriginValidator(accepting_app)
    settings.ALLOWED_HOSTS = ["one.example.com"]
    assert not await websocket_accepted(application, "http://two.example.com")
    settings.ALLOWED_HOSTS = ["two.example.com"]
    assert await websocket_accepted(application, "http://two.example.com")


async def test_debug_with_empty_allowed_hosts_allows_localhost_only(settings):
    settings.DEBUG = True
    settings.ALLOWED_HOSTS = []
    application = AllowedHostsOriginValidator(accepting_app)
    assert await websocket_accepted(application, "http://localhost:8000")
    assert await websocket_accepted(application, "http://127.0.0.1:8000")
    assert await websocket_accepted(application, "http://[::1]:8000")
    assert not await websocket_accepted(application, "http://example.com")


async def test_empty_allowed_hosts_without_debug_allows_nothing(settings):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = []
    application = AllowedHostsOriginValidator(accepting_app)
    assert not await websocket_accepted(application, "http://localhost:8000")


def test_channels_import_path_offers_the_same_validators():
    from realtime.security import websocket

    assert websocket.OriginValidator is OriginValidator
    assert websocket.AllowedHostsOriginValidator is AllowedHostsOriginValidator


async def test_allowed_hosts_validator_refuses_a_missing_origin(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    assert not await websocket_accepted(AllowedHostsOriginValidator(accepting_app), None)
