"""Settings an operator changes while running: trusting the proxy's X-Forwarded-Proto (off unless
asked for), rotating DJANGO_SECRET_KEY without logging everyone out (DJANGO_SECRET_KEY_FALLBACKS),
and rotating the channel layer's encryption keys (SWITCHBOARD_LAYER_ENCRYPTION_KEYS, a list)
with messages already queued in Redis. Each Django configuration runs in a subprocess."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys

import pytest

from tests.test_production_settings import production_env, run

FORWARDED_PROTO_PROBE = """
import django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="switchboard.example.com")
response = client.get("/api/notifications/", HTTP_X_FORWARDED_PROTO="https")
print(response.status_code, response.get("Location", ""))
"""


@pytest.mark.parametrize(
    ("trust", "expected"),
    [(None, "301 https://switchboard.example.com/api/notifications/"), ("1", "401")],
    ids=["default-off", "on"],
)
def test_x_forwarded_proto_is_believed_only_when_the_setting_says_so(tmp_path, trust, expected):
    env = production_env(
        tmp_path, DJANGO_SETTINGS_MODULE="config.settings", DJANGO_TRUST_X_FORWARDED_PROTO=trust
    )
    result = run([sys.executable, "-c", FORWARDED_PROTO_PROBE], env)
    assert result.returncode == 0, result.stderr[-2000:]
    # Off: a client's header is ignored, plain HTTP is redirected. On: the request counts as
    # HTTPS and reaches the API (which wants a login).
    assert result.stdout.strip().splitlines()[-1] == expected


LOGIN_AS_OLD_KEY = """
import django
django.setup()
from django.core.management import call_command
from django.contrib.auth import get_user_model
from django.test import Client
call_command("migrate", verbosity=0)
get_user_model().objects.create_user("rotor", password="pass-word-123")
client = Client(HTTP_HOST="switchboard.example.com")
assert client.login(username="rotor", password="pass-word-123")
print(client.cookies["sessionid"].value)
"""

STILL_LOGGED_IN = """
import sys, django
django.setup()
from django.test import Client
client = Client(HTTP_HOST="switchboard.example.com")
client.cookies["sessionid"] = sys.argv[1]
print(client.get("/api/notifications/", secure=True).status_code)
"""


@pytest.mark.parametrize(
    ("with_fallback", "expected"), [(True, "200"), (False, "401")], ids=["fallback", "none"]
)
def test_rotating_the_secret_key_keeps_sessions_with_the_old_key_as_fallback(
    tmp_path, with_fallback, expected
):
    old, new = secrets.token_urlsafe(50), secrets.token_urlsafe(50)
    env = production_env(tmp_path, DJANGO_SETTINGS_MODULE="config.settings", DJANGO_SECRET_KEY=old)
    result = run([sys.executable, "-c", LOGIN_AS_OLD_KEY], env)
    assert result.returncode == 0, result.stderr[-2000:]
    session = result.stdout.strip().splitlines()[-1]
    env["DJANGO_SECRET_KEY"] = new
    if with_fallback:
        env["DJANGO_SECRET_KEY_FALLBACKS"] = f"{secrets.token_urlsafe(50)}, {old}"
    result = run([sys.executable, "-c", STILL_LOGGED_IN, session], env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == expected


LAYER_CONFIG = """
import json, django
django.setup()
from django.conf import settings
print(json.dumps(settings.CHANNEL_LAYERS["default"]["CONFIG"].get("symmetric_encryption_keys")))
"""


@pytest.mark.parametrize(
    ("environment", "keys"),
    [
        ({"SWITCHBOARD_LAYER_ENCRYPTION_KEYS": "new-key, old-key"}, ["new-key", "old-key"]),
        ({"SWITCHBOARD_LAYER_ENCRYPTION_KEY": "only-key"}, ["only-key"]),
        ({}, None),
    ],
    ids=["list", "single-name", "none"],
)
def test_layer_encryption_keys_come_from_the_environment_as_a_list(tmp_path, environment, keys):
    env = production_env(
        tmp_path,
        DJANGO_SETTINGS_MODULE="config.settings",
        REDIS_URL="redis://127.0.0.1:1/0",
        **environment,
    )
    result = run([sys.executable, "-c", LAYER_CONFIG], env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == keys


def test_a_queued_message_survives_a_layer_key_rotation_and_is_not_stored_in_clear(fresh_redis):
    import redis

    from realtime.layers.redis import RedisChannelLayer

    secret_text = "a notification nobody may read on disk"

    async def scenario() -> dict:
        before = RedisChannelLayer(hosts=[fresh_redis.url], symmetric_encryption_keys=["old"])
        await before.send("rotation-queue", {"type": "job", "text": secret_text})
        await before.close()
        stored = redis.Redis.from_url(fresh_redis.url)
        raw = b"".join(
            repr(stored.dump(key)).encode() for key in stored.keys("*") if stored.dump(key)
        )
        stored.close()
        assert raw, "nothing was queued in Redis"
        assert secret_text.encode() not in raw
        # After the rotation: the new key first (it encrypts), the old one still decrypts.
        after = RedisChannelLayer(hosts=[fresh_redis.url], symmetric_encryption_keys=["new", "old"])
        try:
            return await asyncio.wait_for(after.receive("rotation-queue"), 10)
        finally:
            await after.close()

    message = asyncio.run(scenario())
    assert message == {"type": "job", "text": secret_text}


GC_THRESHOLDS_PROBE = """
import gc
import config.asgi
print(*gc.get_threshold())
"""


@pytest.mark.parametrize(
    ("setting", "expected"),
    [(None, "700 10 100"), ("2000,20,50", "2000 20 50")],
    ids=["default", "set"],
)
def test_the_web_process_collects_the_oldest_generation_as_configured(tmp_path, setting, expected):
    """Python's default (700,10,10) ran a full collection after nearly every 25% of growth
    while a reconnect storm opened sockets; the web process runs them ten times less often."""
    env = production_env(tmp_path, SWITCHBOARD_GC_THRESHOLDS=setting)
    result = run([sys.executable, "-c", GC_THRESHOLDS_PROBE], env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == expected


@pytest.mark.parametrize("setting", ["700,10", "700,10,ten", "-1,10,100"])
def test_malformed_gc_thresholds_stop_the_process_with_a_clear_error(tmp_path, setting):
    env = production_env(tmp_path, SWITCHBOARD_GC_THRESHOLDS=setting)
    result = run([sys.executable, "-c", GC_THRESHOLDS_PROBE], env)
    assert result.returncode != 0
    assert "SWITCHBOARD_GC_THRESHOLDS must be 3 whole numbers" in result.stderr
