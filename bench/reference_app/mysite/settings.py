"""Settings of the Channels tutorial's project, as the benchmark runs it.

The tutorial's settings, with what a benchmark run has to choose read from the environment:
REFERENCE_REDIS_URL (the private redis-server), REFERENCE_LAYER ("core": channels_redis'
RedisChannelLayer as the tutorial configures it, or "pubsub": its RedisPubSubChannelLayer) and
REFERENCE_DATABASE (a SQLite file; the chat itself saves nothing). DEBUG is off, as in every
benchmarked stack.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("REFERENCE_SECRET_KEY", "reference-app-benchmark-only")
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "daphne",
    "chat",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mysite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "mysite.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("REFERENCE_DATABASE", str(BASE_DIR / "db.sqlite3")),
    }
}

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_REDIS_URL = os.environ.get("REFERENCE_REDIS_URL", "redis://127.0.0.1:6379/0")
_LAYER = os.environ.get("REFERENCE_LAYER", "core")
if _LAYER not in ("core", "pubsub"):
    raise ValueError(f"REFERENCE_LAYER must be 'core' or 'pubsub', got {_LAYER!r}")

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": f"channels_redis.{_LAYER}.Redis{'PubSub' if _LAYER == 'pubsub' else ''}"
        "ChannelLayer",
        # channels_redis core blocks 5 s in BZPOPMIN and redis-py 8 times a socket out after 5 s:
        # a longer socket timeout keeps an idle receive() quiet (as Switchboard's settings do).
        # redis-py 8 also caps a pool at 100 connections and then raises MaxConnectionsError
        # instead of waiting: with hundreds of sockets connecting at once, every group_add past
        # the hundredth failed the handshake (HTTP 500), so the pool may grow.
        "CONFIG": {
            "hosts": [{"address": _REDIS_URL, "socket_timeout": 30, "max_connections": 10000}]
        },
    },
}
