"""Fixtures that start real servers for the whole test suite: private Redis servers, Daphne serving
config.asgi on a real socket, and Chromium driven by Playwright. Each fixture starts its own
processes on 127.0.0.1, on free ports, and stops exactly the processes it started.

    channel_layer       a fresh in-memory default channel layer for one test
    redis_server        a private redis-server for the session (.url, .stop(), .start(), .restart())
    fresh_redis         a private redis-server for one test (fault tests stop and start it)
    redis_shards        three independent redis-servers for the session (.urls, .servers);
                        fresh_redis_shards: three for a single test
    redis_cluster       a 3-master Redis Cluster for the session (.url, .urls, .kill(i),
                        .start_node(i), .reshard(...), .add_replica(i), .take_over(i));
                        fresh_redis_cluster: one for a single test
    live_server_factory starts Daphne(s) on a shared SQLite (or DATABASE_URL) database
    live_server         one Daphne for the session, in-memory layer, worker in-process
    browser             a headless Chromium (Debian's /usr/bin/chromium) for the session
    watch_pages()       records CSP violations and script errors of a browser context's pages
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.servers import LiveServer, PostgresServer, RedisCluster, RedisServer, RedisShards

os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")


@pytest.fixture
def channel_layer(settings):
    """A fresh in-memory default channel layer for this test (setting CHANNEL_LAYERS rebuilds
    it), returned for tests that send and receive on it."""
    from realtime.layers import get_channel_layer

    settings.CHANNEL_LAYERS = {
        "default": {"BACKEND": "realtime.layers.memory.InMemoryChannelLayer"}
    }
    return get_channel_layer()


def running(server: Any) -> Iterator[Any]:
    """Start a test server (Redis, shards, cluster, PostgreSQL), yield it, clean it up however
    the fixture's users end, and also when it fails to start."""
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from running(RedisServer())


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    yield from running(RedisServer())


@pytest.fixture(scope="session")
def redis_shards() -> Iterator[RedisShards]:
    yield from running(RedisShards())


@pytest.fixture
def fresh_redis_shards() -> Iterator[RedisShards]:
    """Three servers for one test, which may stop and start them."""
    yield from running(RedisShards())


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    yield from running(RedisCluster())


@pytest.fixture
def fresh_redis_cluster() -> Iterator[RedisCluster]:
    """A cluster for one test, which may kill nodes and move slots."""
    yield from running(RedisCluster())


@pytest.fixture(scope="session")
def live_server_factory() -> Iterator:
    """Make LiveServers: `factory(redis_url=None, database_url=None, **env)`; migrated, cleaned up."""
    servers: list[LiveServer] = []

    def make(redis_url: str | None = None, database_url: str | None = None, **extra: str):
        directory = Path(tempfile.mkdtemp(prefix="sb-live-"))
        env = {
            **os.environ,
            "DJANGO_DEBUG": "1",
            "DJANGO_SECURE_COOKIES": "0",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DATABASE_URL": database_url or f"sqlite:///{directory / 'db.sqlite3'}",
            "DJANGO_EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "DJANGO_EMAIL_FILE_PATH": str(directory / "mail"),
            "DJANGO_MEDIA_ROOT": str(directory / "media"),
            # A stopped server drains for at most this long (tests that time drains set their own).
            "SWITCHBOARD_SHUTDOWN_GRACE": "2",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }
        env.pop("DJANGO_SETTINGS_MODULE", None)
        env.pop("REDIS_URL", None)
        if redis_url:
            env["REDIS_URL"] = redis_url
        server = LiveServer(env=env, directory=directory)
        server.manage("migrate", "--noinput")
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(autouse=True)
def _live_server_helper() -> Iterator[None]:
    """Replaces pytest-django's helper of the same name, which assumes any fixture called
    `live_server` is its own (and fails on ours); our servers need no settings override."""
    yield


@pytest.fixture(scope="session")
def live_server(live_server_factory) -> LiveServer:
    """One all-in-one Daphne (in-memory layer, worker in-process) on a SQLite file, for the session."""
    server = live_server_factory(SWITCHBOARD_APRS_REPLAY="")
    server.start_daphne()
    return server


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@pytest.fixture(scope="session")
def browser() -> Iterator:
    """Debian's Chromium, headless, driven by Playwright (never a downloaded browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()


# Chromium logs a CSP refusal to the console; the event listener also reports ones a page's own
# script could swallow. The init script runs before the page, and the CSP does not apply to it.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  console.error(`CSP violation: ${event.effectiveDirective} refused ${event.blockedURI || "inline"}`
    + ` at ${event.sourceFile || "?"}:${event.lineNumber}`);
});
"""


@dataclass
class PageProblems:
    """What went wrong in the pages of one browser context: Content-Security-Policy violations,
    other console errors, and uncaught script errors."""

    csp_violations: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    script_errors: list[str] = field(default_factory=list)

    def record_console(self, message: object) -> None:
        if getattr(message, "type", "") != "error":
            return
        text = str(getattr(message, "text", message))
        if "Content Security Policy" in text or text.startswith("CSP violation"):
            self.csp_violations.append(text)
        else:
            self.console_errors.append(text)


def watch_pages(context: object) -> PageProblems:
    """Record the problems of every page `context` (a Playwright BrowserContext) opens from now."""
    problems = PageProblems()
    context.add_init_script(REPORT_CSP_VIOLATIONS)  # type: ignore[attr-defined]

    def on_page(page: object) -> None:
        page.on("console", problems.record_console)  # type: ignore[attr-defined]
        page.on("pageerror", lambda error: problems.script_errors.append(str(error)))  # type: ignore[attr-defined]

    context.on("page", on_page)  # type: ignore[attr-defined]
    return problems


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that use `browser` last: once Playwright's sync API has started, its event
    loop stays set as running in the main thread, and every later asyncio test would fail with
    "Runner.run() cannot be called from a running event loop". The sort is stable."""
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A private PostgreSQL for the session; yields the DATABASE_URL of its (empty) database."""
    for server in running(PostgresServer()):
        yield server.url
