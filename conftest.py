"""Fixtures that start real servers for the whole test suite: private Redis servers, Daphne serving
config.asgi on a real socket, and Chromium driven by Playwright. Each fixture starts its own
processes on 127.0.0.1, on free ports, and stops exactly the processes it started.

    redis_server        a private redis-server for the session (.url, .stop(), .start(), .restart())
    fresh_redis         a private redis-server for one test (fault tests stop and start it)
    live_server_factory starts Daphne(s) on a shared SQLite (or DATABASE_URL) database
    live_server         one Daphne for the session, in-memory layer, worker in-process
    browser             a headless Chromium (Debian's /usr/bin/chromium) for the session
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
PYTHON = sys.executable
os.environ.setdefault("DJANGO_DEBUG", "1")
os.environ.setdefault("DJANGO_SECURE_COOKIES", "0")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(
    port: int, timeout: float = 20.0, process: subprocess.Popen | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def stop_process(
    process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Stop a process this suite started (by its PID), escalating to SIGKILL."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


@dataclass
class RedisServer:
    """A private redis-server on a free port that a test may stop and start again."""

    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sb-redis-")))
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, process=self.process)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def flushall(self) -> None:
        import redis

        client = redis.Redis(port=self.port)
        client.flushall()
        client.close()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture
def fresh_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@dataclass
class LiveServer:
    """One or more Daphne processes serving config.asgi:application on a shared database.

    `env` is the environment every process of this server gets (DATABASE_URL, REDIS_URL, ...);
    `manage()` runs a management command against the same database.
    """

    env: dict[str, str]
    directory: Path
    processes: list[subprocess.Popen] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    @property
    def port(self) -> int:
        return self.ports[0]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def manage(self, *args: str, check: bool = True, timeout: float = 60) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and result.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
            )
        return result.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "--no-imports", "-c", code)

    def create_user(
        self, username: str, password: str = "pass-word-123", staff: bool = False
    ) -> str:
        """Create (or update) a user and return a logged-in session key for the `sessionid` cookie."""
        code = (
            "from django.contrib.auth import get_user_model, HASH_SESSION_KEY, SESSION_KEY, "
            "BACKEND_SESSION_KEY\n"
            "from django.contrib.sessions.backends.db import SessionStore\n"
            f"u, _ = get_user_model().objects.get_or_create(username={username!r})\n"
            f"u.is_staff = u.is_superuser = {staff!r}\n"
            f"u.email = {username + '@example.com'!r}\n"
            f"u.set_password({password!r}); u.save()\n"
            "s = SessionStore()\n"
            "s[SESSION_KEY] = str(u.pk)\n"
            "s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
            "s[HASH_SESSION_KEY] = u.get_session_auth_hash()\n"
            "s.create()\n"
            "print(s.session_key)\n"
        )
        return self.shell(code).strip().splitlines()[-1]

    def start_daphne(self, extra_env: dict[str, str] | None = None, port: int | None = None) -> int:
        """Start a Daphne (on `port`, e.g. where a stopped one listened, or a free port)."""
        port = port or free_port()
        log = open(self.directory / f"daphne-{port}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=ROOT,
            env={**self.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(port, timeout=30, process=process)
        self.processes.append(process)
        self.ports.append(port)
        return port

    def restart_daphne(self, port: int) -> None:
        """Stop the Daphne on `port` (SIGTERM: its sockets close) and start a new one there."""
        index = self.ports.index(port)
        stop_process(self.processes[index])
        del self.processes[index], self.ports[index]
        self.start_daphne(port=port)

    def start_process(self, *args: str, name: str = "proc") -> subprocess.Popen:
        """Start another manage.py process (a worker, the APRS gateway) on the same database."""
        log = open(self.directory / f"{name}-{len(self.processes)}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.processes.append(process)
        return process

    def log(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.directory.glob("*.log")))

    def stop(self) -> None:
        for process in self.processes:
            stop_process(process)
        self.processes.clear()


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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the tests that use `browser` last: once Playwright's sync API has started, its event
    loop stays set as running in the main thread, and every later asyncio test would fail with
    "Runner.run() cannot be called from a running event loop". The sort is stable."""
    items.sort(key=lambda item: "browser" in getattr(item, "fixturenames", ()))


@dataclass
class PostgresServer:
    """A private PostgreSQL cluster in a temporary directory, on a free port of 127.0.0.1.

    initdb refuses to run as root, so under root the cluster belongs to the `postgres` system user
    (or `nobody` when there is none) and the server binaries run through `runuser`. Authentication
    is `trust` on 127.0.0.1 only; the cluster is thrown away at the end of the session.
    """

    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sb-pg-")))
    user: str = "switchboard"
    database: str = "switchboard"
    pid: int | None = None

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{self.database}"

    @staticmethod
    def binaries() -> Path:
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts)
        if found:
            return found[-1].parent
        initdb = shutil.which("initdb")
        if initdb is None:
            raise RuntimeError("PostgreSQL is not installed (run scripts/install-system-deps.sh)")
        return Path(initdb).parent

    def _as_owner(self) -> list[str]:
        if os.geteuid() != 0:
            return []
        import pwd

        for owner in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                entry = pwd.getpwnam(owner)
                os.chown(self.directory, entry.pw_uid, entry.pw_gid)
                return ["runuser", "-u", owner, "--"]
        raise RuntimeError("running as root and no 'postgres' or 'nobody' user to own the cluster")

    def start(self) -> None:
        bin_dir = self.binaries()
        prefix = self._as_owner()
        data = self.directory / "data"
        subprocess.run(
            [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-U", self.user,
             "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        options = (
            f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=300"
        )
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options,
             "-l", str(self.directory / "postgres.log"), "-w", "-t", "60", "start"],
            check=True, capture_output=True, timeout=90,
        )  # fmt: skip
        self.pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        wait_for_port(self.port)
        subprocess.run(
            [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
             self.database],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

    def stop(self) -> None:
        """Stop the postmaster by its PID (SIGINT is PostgreSQL's fast shutdown)."""
        if self.pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGINT)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                os.kill(self.pid, 0)
                time.sleep(0.1)
            os.kill(self.pid, signal.SIGKILL)
        self.pid = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A private PostgreSQL for the session; yields the DATABASE_URL of its (empty) database."""
    server = PostgresServer()
    try:
        server.start()
    except BaseException:
        server.cleanup()
        raise
    yield server.url
    server.cleanup()
