"""Switchboard settings.

Everything an operator may change comes from the environment, read in the one block below. The
defaults make `make run` work on a laptop (SQLite, in-memory channel layer, worker in-process);
production sets DJANGO_DEBUG=0, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL and REDIS_URL.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {value!r}")


def _env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


# ---------------------------------------------------------------------------------------------
# The environment, read in one place.
# ---------------------------------------------------------------------------------------------
DEVELOPMENT_SECRET_KEY = "django-insecure-switchboard-development-key-do-not-use-in-production"
DEBUG = _env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "") or DEVELOPMENT_SECRET_KEY
ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = _env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
REDIS_URL = os.environ.get("REDIS_URL", "")
# Which Redis channel layer REDIS_URL selects: "switchboard" (ours), "channels_redis" or
# "channels_redis_pubsub" (the reference implementations, for comparison and migration).
CHANNEL_LAYER_IMPLEMENTATION = os.environ.get("SWITCHBOARD_CHANNEL_LAYER", "switchboard")
CHANNEL_LAYER_ENCRYPTION_KEY = os.environ.get("SWITCHBOARD_LAYER_ENCRYPTION_KEY", "")
# Seconds before messages taken by a worker that died (unacknowledged) return to their queue; our
# Redis layer only. Empty: the layer's default (30).
CHANNEL_LAYER_WORKER_LEASE = os.environ.get("SWITCHBOARD_WORKER_LEASE", "")
# Messages one channel of the Redis layer holds before it drops (a slow socket misses broadcasts
# and catches up from the database). Empty: the layer's default (100).
CHANNEL_LAYER_CAPACITY = os.environ.get("SWITCHBOARD_LAYER_CAPACITY", "")
SECURE_COOKIES = _env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
# Production redirects plain HTTP to HTTPS (the proxy says which it was in X-Forwarded-Proto).
SECURE_SSL_REDIRECT = _env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
LOG_LEVEL = os.environ.get("DJANGO_LOG_LEVEL", "INFO")
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
EMAIL_FILE_PATH = os.environ.get("DJANGO_EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "switchboard@localhost")
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# The all-in-one server (`manage.py serve`) replays this APRS capture so /news/ is alive out of the
# box; empty disables it. Production runs `manage.py aprs_gateway` against APRS-IS instead.
APRS_REPLAY_FILE = os.environ.get(
    "SWITCHBOARD_APRS_REPLAY", str(BASE_DIR / "aprs_news" / "samples" / "sample.aprs")
)
APRS_SERVER = os.environ.get("SWITCHBOARD_APRS_SERVER", "rotate.aprs2.net:14580")
APRS_CALLSIGN = os.environ.get("SWITCHBOARD_APRS_CALLSIGN", "N0CALL")
APRS_PASSCODE = os.environ.get("SWITCHBOARD_APRS_PASSCODE", "-1")
APRS_FILTER = os.environ.get("SWITCHBOARD_APRS_FILTER", "t/sm")
# Reconnect when APRS-IS sends nothing, not even its 20-second keep-alive, for this many seconds.
APRS_SILENCE_TIMEOUT = float(os.environ.get("SWITCHBOARD_APRS_SILENCE_TIMEOUT", "60"))
# The in-process worker of `manage.py serve`: "auto" runs it when the default layer is in-memory.
REALTIME_INPROCESS_WORKER = os.environ.get("SWITCHBOARD_INPROCESS_WORKER", "auto")
# How many times a worker re-queues a message whose handler raises ConsumeLater before it becomes
# a dead letter.
REALTIME_CONSUME_LATER_MAX_RETRIES = int(
    os.environ.get("SWITCHBOARD_CONSUME_LATER_MAX_RETRIES", "10")
)
# Chat: messages one user may post in one room per window, "<count>/<seconds>".
CHAT_RATE_LIMIT = os.environ.get("SWITCHBOARD_CHAT_RATE_LIMIT", "10/5")
# Chat presence across processes (with REDIS_URL): every open room socket refreshes its entry
# every HEARTBEAT seconds; the entries of a process that died expire TTL seconds after their last
# refresh, and the open pages are then told. TTL must be longer than the heartbeat.
CHAT_PRESENCE_HEARTBEAT_SECONDS = float(os.environ.get("SWITCHBOARD_PRESENCE_HEARTBEAT", "30"))
CHAT_PRESENCE_TTL_SECONDS = float(os.environ.get("SWITCHBOARD_PRESENCE_TTL", "90"))
# ---------------------------------------------------------------------------------------------

if not 0 < CHAT_PRESENCE_HEARTBEAT_SECONDS < CHAT_PRESENCE_TTL_SECONDS:
    raise ImproperlyConfigured(
        "SWITCHBOARD_PRESENCE_HEARTBEAT must be positive and shorter than SWITCHBOARD_PRESENCE_TTL "
        f"(else present users flicker out), got {CHAT_PRESENCE_HEARTBEAT_SECONDS} and "
        f"{CHAT_PRESENCE_TTL_SECONDS}"
    )

if not DEBUG and SECRET_KEY == DEVELOPMENT_SECRET_KEY:
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is not set. With DJANGO_DEBUG off Switchboard refuses the built-in "
        "development key; set DJANGO_SECRET_KEY to a long random value."
    )

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "allauth",
    "allauth.account",
    "realtime",
    "chat",
    "notifications",
    "aprs_news",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process and a worker read while the other writes; connections are kept
    # (CONN_MAX_AGE) because reopening one costs more than the query it serves.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if REDIS_URL:
    _REDIS_LAYER_BACKENDS = {
        "switchboard": "realtime.layers.redis.RedisChannelLayer",
        "channels_redis": "channels_redis.core.RedisChannelLayer",
        "channels_redis_pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    }
    if CHANNEL_LAYER_IMPLEMENTATION not in _REDIS_LAYER_BACKENDS:
        raise ImproperlyConfigured(
            f"SWITCHBOARD_CHANNEL_LAYER must be one of {sorted(_REDIS_LAYER_BACKENDS)}, "
            f"got {CHANNEL_LAYER_IMPLEMENTATION!r}"
        )
    _layer_config: dict = {"hosts": [REDIS_URL]}
    if CHANNEL_LAYER_IMPLEMENTATION != "switchboard":
        # channels_redis blocks 5 s in BZPOPMIN while redis-py 8 times sockets out after 5 s, so an
        # idle receive() raises TimeoutError; a longer socket timeout keeps it quiet.
        _layer_config["hosts"] = [{"address": REDIS_URL, "socket_timeout": 30}]
    if CHANNEL_LAYER_ENCRYPTION_KEY:
        _layer_config["symmetric_encryption_keys"] = [CHANNEL_LAYER_ENCRYPTION_KEY]
    if CHANNEL_LAYER_CAPACITY:
        _layer_config["capacity"] = int(CHANNEL_LAYER_CAPACITY)
    if CHANNEL_LAYER_WORKER_LEASE and CHANNEL_LAYER_IMPLEMENTATION == "switchboard":
        _layer_config["worker_lease"] = float(CHANNEL_LAYER_WORKER_LEASE)
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": _REDIS_LAYER_BACKENDS[CHANNEL_LAYER_IMPLEMENTATION],
            "CONFIG": _layer_config,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

# django-allauth: username or e-mail log-in, e-mail optional so the demo works without a mail server.
ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["email", "username*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = "none"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}
WHITENOISE_USE_FINDERS = DEBUG

SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
# Probes and scrapers talk plain HTTP to the process itself, inside the deployment.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if not DEBUG:
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

# Extra protocol servers `manage.py serve` runs beside Daphne in the same event loop: dotted paths
# to `async def service(application) -> None`, cancelled at shutdown.
REALTIME_EMBEDDED_SERVICES = ["aprs_news.gateway.embedded_replay"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
