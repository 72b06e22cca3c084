"""Switchboard settings.

Everything an operator may change comes from the environment, read in the one block below. The
defaults make `make run` work on a laptop (SQLite, in-memory channel layer, worker in-process);
production sets DJANGO_DEBUG=0, DJANGO_SECRET_KEY, DJANGO_ALLOWED_HOSTS, DATABASE_URL and REDIS_URL.
"""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.mail import CONSOLE_BACKEND, parse_email_url

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


def _env_int(name: str, default: int, minimum: int = 0) -> int:
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    if not (value.isascii() and value.isdigit()) or int(value) < minimum:
        raise ImproperlyConfigured(
            f"{name} must be a whole number of {minimum} or more, got {value!r}"
        )
    return int(value)


def _env_ints(name: str, default: tuple[int, ...], count: int) -> tuple[int, ...]:
    value = os.environ.get(name, "").strip()
    if value == "":
        return default
    parts = [part.strip() for part in value.split(",")]
    if len(parts) != count or not all(part.isascii() and part.isdigit() for part in parts):
        raise ImproperlyConfigured(
            f"{name} must be {count} whole numbers separated by commas, got {value!r}"
        )
    return tuple(int(part) for part in parts)


# ---------------------------------------------------------------------------------------------
# The environment, read in one place.
# ---------------------------------------------------------------------------------------------
DEVELOPMENT_SECRET_KEY = "django-insecure-switchboard-development-key-do-not-use-in-production"
DEBUG = _env_bool("DJANGO_DEBUG", False)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "") or DEVELOPMENT_SECRET_KEY
# Earlier secret keys, comma-separated: sessions and password-reset links signed with them stay
# valid while DJANGO_SECRET_KEY is rotated (docs/deployment.md, "Rotating secrets").
SECRET_KEY_FALLBACKS = _env_list("DJANGO_SECRET_KEY_FALLBACKS", "")
ALLOWED_HOSTS = _env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")
CSRF_TRUSTED_ORIGINS = _env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
# PostgreSQL connections one process keeps in Django's connection pool (0: no pool, a connection
# per request or consumer call, e.g. behind PgBouncer).
DATABASE_POOL_SIZE = _env_int("SWITCHBOARD_DB_POOL_SIZE", 10)
REDIS_URL = os.environ.get("REDIS_URL", "")
# Which Redis channel layer REDIS_URL selects: "switchboard" (ours), "channels_redis" or
# "channels_redis_pubsub" (the reference implementations, for comparison and migration).
CHANNEL_LAYER_IMPLEMENTATION = os.environ.get("SWITCHBOARD_CHANNEL_LAYER", "switchboard")
# Keys that encrypt what the Redis layer stores and publishes, comma-separated: the first encrypts,
# every one decrypts (append the old key after a new one to rotate). The single-key name
# SWITCHBOARD_LAYER_ENCRYPTION_KEY is still read when the list is unset.
CHANNEL_LAYER_ENCRYPTION_KEYS = _env_list(
    "SWITCHBOARD_LAYER_ENCRYPTION_KEYS", os.environ.get("SWITCHBOARD_LAYER_ENCRYPTION_KEY", "")
)
# Seconds before messages taken by a worker that died (unacknowledged) return to their queue; our
# Redis layer only. Empty: the layer's default (30).
CHANNEL_LAYER_WORKER_LEASE = os.environ.get("SWITCHBOARD_WORKER_LEASE", "")
# When one Redis is not enough for our layer (REDIS_URL keeps the chat's own shared state):
# several independent servers to shard over (comma-separated URLs), or any node of a Redis Cluster.
CHANNEL_LAYER_HOSTS = _env_list("SWITCHBOARD_LAYER_HOSTS", "")
CHANNEL_LAYER_CLUSTER = os.environ.get("SWITCHBOARD_LAYER_CLUSTER", "")
# Messages one channel of the Redis layer holds before it drops (a slow socket misses broadcasts
# and catches up from the database). Empty: the layer's default (100).
CHANNEL_LAYER_CAPACITY = os.environ.get("SWITCHBOARD_LAYER_CAPACITY", "")
SECURE_COOKIES = _env_bool("DJANGO_SECURE_COOKIES", not DEBUG)
# Production redirects plain HTTP to HTTPS (the proxy says which it was in X-Forwarded-Proto).
SECURE_SSL_REDIRECT = _env_bool("DJANGO_SECURE_SSL_REDIRECT", not DEBUG)
# HSTS max-age sent with DEBUG off; 0 sends no HSTS header.
HSTS_SECONDS = _env_int("DJANGO_HSTS_SECONDS", 31536000)
# Let Django believe X-Forwarded-Proto: https. Only behind a proxy that always sets it and with the
# app reachable through that proxy alone, or any client can claim HTTPS. Not needed when Daphne
# runs with --proxy-headers (it takes the scheme from the same header for Django).
TRUST_X_FORWARDED_PROTO = _env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", False)
LOG_LEVEL = os.environ.get("DJANGO_LOG_LEVEL", "INFO")
# "plain" (people) or "json" (log shippers: one object per line with level, logger, message and
# the request/connection id; config/logs.py).
LOG_FORMAT = os.environ.get("DJANGO_LOG_FORMAT", "plain")
# Outgoing mail as one URL (config/mail.py): smtp+tls://user:password@host:587, smtp+ssl://...,
# smtp://host:25, console://, file:///dir, dummy://. With DEBUG off, one of these (or
# DJANGO_EMAIL_BACKEND) must be chosen: the console default would log password-reset links.
EMAIL_URL = os.environ.get("DJANGO_EMAIL_URL", "")
# A mail backend's dotted path, the older alternative to DJANGO_EMAIL_URL (not both).
EMAIL_BACKEND = os.environ.get("DJANGO_EMAIL_BACKEND", "")
EMAIL_FILE_PATH = os.environ.get("DJANGO_EMAIL_FILE_PATH", str(BASE_DIR / "var" / "mail"))
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "switchboard@localhost")
# The site's public address, for links in e-mails sent outside a request (unread mentions).
SITE_URL = os.environ.get("SWITCHBOARD_SITE_URL", "") or (
    CSRF_TRUSTED_ORIGINS[0] if CSRF_TRUSTED_ORIGINS else "http://127.0.0.1:8000"
)
# Seconds between sweeps for unread mentions and DMs to e-mail (chat.mail); 0: `manage.py serve`
# runs none (run `manage.py send_unread_mail` elsewhere).
CHAT_MAIL_SWEEP_SECONDS = _env_int("SWITCHBOARD_MAIL_SWEEP_SECONDS", 60)
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))
# Uploaded files (chat attachments), written through Django's default storage. Never served
# from here directly: chat.attachment_views checks every request (docs/apps/chat.md).
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT", str(BASE_DIR / "var" / "media")))
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
# A bulletin heard again within this many seconds of its last sighting is the same news item.
APRS_DEDUPE_WINDOW_SECONDS = _env_int("SWITCHBOARD_APRS_DEDUPE_WINDOW_SECONDS", 12 * 60 * 60)
# News not heard again for this many days is deleted, so a busy feed does not grow forever.
APRS_RETENTION_DAYS = _env_int("SWITCHBOARD_APRS_RETENTION_DAYS", 7, minimum=1)
# The in-process worker of `manage.py serve`: "auto" runs it when the default layer is in-memory.
REALTIME_INPROCESS_WORKER = os.environ.get("SWITCHBOARD_INPROCESS_WORKER", "auto")
# How many times a worker re-queues a message whose handler raises ConsumeLater before it becomes
# a dead letter.
REALTIME_CONSUME_LATER_MAX_RETRIES = int(
    os.environ.get("SWITCHBOARD_CONSUME_LATER_MAX_RETRIES", "10")
)
# Bytes `manage.py serve` lets wait for a WebSocket client that does not read before it closes the
# socket with 4008 (see realtime.backlog).
REALTIME_WEBSOCKET_MAX_BACKLOG = _env_int(
    "SWITCHBOARD_WEBSOCKET_MAX_BACKLOG", 1024 * 1024, minimum=64 * 1024
)
# Seconds a web process (`manage.py serve`) lets requests in flight finish after SIGTERM, once it
# has stopped accepting and closed its WebSockets with 1012. Supervisors must wait longer.
REALTIME_SHUTDOWN_GRACE = float(os.environ.get("SWITCHBOARD_SHUTDOWN_GRACE", "15"))
# Chat: messages one user may post in one room per window, "<count>/<seconds>".
CHAT_RATE_LIMIT = os.environ.get("SWITCHBOARD_CHAT_RATE_LIMIT", "10/5")
# Django's cache (login rate limits live there): Redis when this (default: REDIS_URL) is set, so
# the limits hold across processes; keys start with "switchboard-cache", apart from the layer's.
CACHE_URL = os.environ.get("SWITCHBOARD_CACHE_URL", "") or REDIS_URL
# Request bodies, in bytes: the largest `manage.py serve` reads at all (refused with 413 before it
# is buffered; 0: no limit), and the largest the core's own HTTP endpoints (the long-poll) accept.
REALTIME_MAX_REQUEST_BODY = _env_int("SWITCHBOARD_MAX_REQUEST_BODY", 2621440)
# Chat attachments: the largest file one upload may carry, in bytes (docs/apps/chat.md,
# "Attachments"). The upload URL alone gets a request body limit to match (below).
CHAT_ATTACHMENT_MAX_BYTES = _env_int("SWITCHBOARD_ATTACHMENT_MAX_BYTES", 10 * 1024 * 1024, 1)
# ... and the most one user may store from uploads of the last 24 hours (0: no quota).
CHAT_ATTACHMENT_DAILY_BYTES = _env_int("SWITCHBOARD_ATTACHMENT_DAILY_BYTES", 200 * 1024 * 1024)
REALTIME_HTTP_MAX_BODY = _env_int("SWITCHBOARD_HTTP_MAX_BODY", 65536)
# WebSocket Origin check. Strict (production default): scheme, host and port must equal one of
# REALTIME_ALLOWED_ORIGINS, which defaults to DJANGO_CSRF_TRUSTED_ORIGINS, else https://<host> for
# each allowed host. Not strict: any scheme and port of an ALLOWED_HOSTS host.
REALTIME_STRICT_ORIGINS = _env_bool("SWITCHBOARD_STRICT_ORIGINS", not DEBUG)
REALTIME_ALLOWED_ORIGINS = (
    _env_list("SWITCHBOARD_ALLOWED_ORIGINS", "")
    or CSRF_TRUSTED_ORIGINS
    or [f"https://{host}" for host in ALLOWED_HOSTS if host != "*"]
)
# Frames a second each WebSocket may send (realtime.generic.frames: the request budget refills at
# this rate and holds twice as many; frames beyond it are refused with rate_limited). Apps may set
# their own (the APRS feed: 5).
REALTIME_FRAMES_PER_SECOND = _env_int("SWITCHBOARD_FRAMES_PER_SECOND", 20, minimum=1)
# Open WebSockets and waiting long-polls one user may hold in one process (0: no cap).
REALTIME_MAX_SOCKETS_PER_USER = _env_int("SWITCHBOARD_MAX_SOCKETS_PER_USER", 20)
REALTIME_MAX_POLLS_PER_USER = _env_int("SWITCHBOARD_MAX_POLLS_PER_USER", 5)
# The garbage collector's thresholds in the web process, "<gen0>,<gen1>,<gen2>" (Python's are
# 700,10,10). A full collection walks every object the process holds, and while sockets pile up
# (a reconnect storm) Python's default runs one after nearly every 25% of growth: 40% of a
# storm's CPU. 100 runs it ten times less often (docs/deployment.md, "Garbage collection").
REALTIME_GC_THRESHOLDS = _env_ints("SWITCHBOARD_GC_THRESHOLDS", (700, 10, 100), count=3)
# Chat presence across processes (with REDIS_URL): every open room socket refreshes its entry
# every HEARTBEAT seconds; the entries of a process that died expire TTL seconds after their last
# refresh, and the open pages are then told. TTL must be longer than the heartbeat.
CHAT_PRESENCE_HEARTBEAT_SECONDS = float(os.environ.get("SWITCHBOARD_PRESENCE_HEARTBEAT", "30"))
CHAT_PRESENCE_TTL_SECONDS = float(os.environ.get("SWITCHBOARD_PRESENCE_TTL", "90"))
# ---------------------------------------------------------------------------------------------

# An attachment upload is a multipart form: the file plus its field headers and the boundaries.
# Only its URL may carry a body that large; every other request keeps REALTIME_MAX_REQUEST_BODY
# (realtime.request_body reads these per-path limits before it buffers a byte).
CHAT_ATTACHMENT_FORM_OVERHEAD = 64 * 1024
REALTIME_REQUEST_BODY_LIMITS = [
    (r"^/rooms/[^/]+/attachments/$", CHAT_ATTACHMENT_MAX_BYTES + CHAT_ATTACHMENT_FORM_OVERHEAD)
]

if REALTIME_STRICT_ORIGINS and any(
    "://" not in origin and origin != "*" for origin in REALTIME_ALLOWED_ORIGINS
):
    raise ImproperlyConfigured(
        "With SWITCHBOARD_STRICT_ORIGINS on, every allowed origin needs its scheme "
        f"(https://chat.example.com), got {REALTIME_ALLOWED_ORIGINS!r}"
    )
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

if EMAIL_URL and EMAIL_BACKEND:
    raise ImproperlyConfigured(
        "Both DJANGO_EMAIL_URL and DJANGO_EMAIL_BACKEND are set; set only DJANGO_EMAIL_URL."
    )
if EMAIL_URL:
    try:
        globals().update(parse_email_url(EMAIL_URL))
    except ValueError as error:
        raise ImproperlyConfigured(str(error)) from error
elif not EMAIL_BACKEND:
    if not DEBUG:
        raise ImproperlyConfigured(
            "No outgoing mail is configured. With DJANGO_DEBUG off Switchboard refuses to print "
            "e-mail (password-reset links) to the log: set DJANGO_EMAIL_URL, e.g. "
            "smtp+tls://user:password@mail.example.com:587, or DJANGO_EMAIL_URL=console:// to "
            "choose the console on purpose."
        )
    EMAIL_BACKEND = CONSOLE_BACKEND

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
    "config.middleware.ContentSecurityPolicyMiddleware",
    "config.middleware.CacheUnavailableMiddleware",
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
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Under ASGI every page request runs its synchronous view in a thread of its own, so a
    # persistent connection (CONN_MAX_AGE) is never reused: each request opened a new one and
    # left it open until its thread's garbage was collected. Django's pool (psycopg_pool) bounds
    # a process's connections instead and hands them out per request and per consumer call.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    if DATABASE_POOL_SIZE:
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(2, DATABASE_POOL_SIZE),
            "max_size": DATABASE_POOL_SIZE,
            "timeout": 10,  # seconds a request waits for a free connection before it fails
        }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if (CHANNEL_LAYER_HOSTS or CHANNEL_LAYER_CLUSTER) and not REDIS_URL:
    raise ImproperlyConfigured(
        "SWITCHBOARD_LAYER_HOSTS / SWITCHBOARD_LAYER_CLUSTER need REDIS_URL too (a plain Redis for "
        "the chat's shared state: presence and rate limits)"
    )
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
    if CHANNEL_LAYER_ENCRYPTION_KEYS:
        _layer_config["symmetric_encryption_keys"] = CHANNEL_LAYER_ENCRYPTION_KEYS
    if CHANNEL_LAYER_CAPACITY:
        _layer_config["capacity"] = int(CHANNEL_LAYER_CAPACITY)
    if CHANNEL_LAYER_WORKER_LEASE and CHANNEL_LAYER_IMPLEMENTATION == "switchboard":
        _layer_config["worker_lease"] = float(CHANNEL_LAYER_WORKER_LEASE)
    if (
        CHANNEL_LAYER_HOSTS or CHANNEL_LAYER_CLUSTER
    ) and CHANNEL_LAYER_IMPLEMENTATION != "switchboard":
        raise ImproperlyConfigured(
            "SWITCHBOARD_LAYER_HOSTS and SWITCHBOARD_LAYER_CLUSTER need SWITCHBOARD_CHANNEL_LAYER="
            f"switchboard, got {CHANNEL_LAYER_IMPLEMENTATION!r}"
        )
    if CHANNEL_LAYER_HOSTS and CHANNEL_LAYER_CLUSTER:
        raise ImproperlyConfigured(
            "Set SWITCHBOARD_LAYER_HOSTS or SWITCHBOARD_LAYER_CLUSTER, not both"
        )
    if CHANNEL_LAYER_HOSTS:
        _layer_config["hosts"] = CHANNEL_LAYER_HOSTS
    elif CHANNEL_LAYER_CLUSTER:
        del _layer_config["hosts"]
        _layer_config["cluster"] = CHANNEL_LAYER_CLUSTER
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": _REDIS_LAYER_BACKENDS[CHANNEL_LAYER_IMPLEMENTATION],
            "CONFIG": _layer_config,
        }
    }
else:
    CHANNEL_LAYERS = {"default": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"}}

if CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": CACHE_URL,
            "KEY_PREFIX": "switchboard-cache",
            # A login waits at most this long on an unreachable cache, then fails (closed).
            "OPTIONS": {"socket_connect_timeout": 2, "socket_timeout": 2},
        }
    }

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
# Login limits (docs/security.md): counted in Django's cache, so shared by every process when
# CACHE_URL/REDIS_URL is set. The admin's login page sends users to this login (config/urls.py),
# so one set of limits covers both. Per client IP: 30 login posts and 10 failures a minute; per
# account: 5 failures in a sliding 5 minutes, after which even the right password is refused
# until the oldest failure is 5 minutes old. A password reset clears the account's count.
ACCOUNT_RATE_LIMITS = {"login": "30/m/ip", "login_failed": "10/m/ip,5/5m/key"}
# Counts an account's failures under one key, however its login is typed (config/accounts.py).
ACCOUNT_ADAPTER = "config.accounts.AccountAdapter"

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

# Sent on every page (config.middleware) and every core HTTP answer (realtime.security.http).
# 'self' in connect-src covers ws:// and wss:// to the page's own host and port.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

SESSION_COOKIE_SECURE = SECURE_COOKIES
CSRF_COOKIE_SECURE = SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUST_X_FORWARDED_PROTO else None
# Probes and scrapers talk plain HTTP to the process itself, inside the deployment.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]
if not DEBUG:
    SECURE_HSTS_SECONDS = HSTS_SECONDS
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True

# Extra protocol servers `manage.py serve` runs beside Daphne in the same event loop: dotted paths
# to `async def service(application) -> None`, cancelled at shutdown.
REALTIME_EMBEDDED_SERVICES = ["aprs_news.gateway.embedded_replay", "chat.mail.embedded_sweeper"]

if LOG_FORMAT not in {"plain", "json"}:
    raise ImproperlyConfigured(f"DJANGO_LOG_FORMAT must be 'plain' or 'json', got {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "config.logs.JsonFormatter"},
    },
    "filters": {"connection_id": {"()": "config.logs.ContextFilter"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["connection_id"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # Django's own default config gives the "django" logger a plain console handler of its
        # own (while DEBUG); it would print every record once more, without time or level.
        "django": {"handlers": [], "level": LOG_LEVEL, "propagate": True},
    },
}
