"""What the whole-stack benchmarks share: a private redis-server, a prepared SQLite database with
rooms and logged-in senders, and one Switchboard server process (Daphne or uvicorn) on a chosen
channel layer. Everything listens on 127.0.0.1 on free ports and is stopped by its PID.

    redis = PrivateRedis(); redis.start()
    template = prepare_database(work_dir, rooms=["lobby"], senders=["s0", "s1"])
    with Server("daphne", "switchboard", redis.url, template) as server:
        ... websockets to server.ws_url(f"/ws/chat/lobby/") with server.origin ...
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
SERVERS = ("daphne", "uvicorn")
LAYERS = ("switchboard", "channels_redis", "channels_redis_pubsub")
LAYER_TITLES = {
    "switchboard": "Switchboard Redis layer",
    "channels_redis": "channels_redis core",
    "channels_redis_pubsub": "channels_redis pub/sub",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s")


def raise_open_file_limit(wanted: int = 16384) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards `wanted` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def stop(process: subprocess.Popen, timeout: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


class PrivateRedis:
    """A redis-server with no persistence on a free port, for one benchmark run."""

    def __init__(self) -> None:
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="sb-bench-redis-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(self.port),
             "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.directory), "--maxclients", "20000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, self.process)

    def flushall(self) -> None:
        subprocess.run(
            ["redis-cli", "-p", str(self.port), "flushall"], check=True, capture_output=True
        )

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)


#: Where the server's SQLite file lives: tmpfs when the machine has one, so that every stack pays
#: the same small cost per saved message instead of the disk's fsync (20 ms a commit on the
#: benchmark machine), which would hide the differences between channel layers and servers.
MEMORY_DISK = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None

#: One secret per benchmark run: the prepared sessions must stay valid in every server.
SECRET_KEY = secrets.token_urlsafe(50)


def base_env(database: Path) -> dict[str, str]:
    """Production-like settings (DEBUG off: no query log), on a SQLite file, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SWITCHBOARD_"))}
    env.pop("REDIS_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY=SECRET_KEY,
        DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
        DJANGO_SECURE_SSL_REDIRECT="0",
        DJANGO_LOG_LEVEL="WARNING",
        DJANGO_EMAIL_URL="dummy://",
        DATABASE_URL=f"sqlite:///{database}",
        SWITCHBOARD_APRS_REPLAY="",
        SWITCHBOARD_CHAT_RATE_LIMIT="1000000/1",
        # The clients connect from http://127.0.0.1:<port>, not the https origin production wants,
        # and hold many sockets per user.
        SWITCHBOARD_STRICT_ORIGINS="0",
        SWITCHBOARD_MAX_SOCKETS_PER_USER="0",
        SWITCHBOARD_MAX_POLLS_PER_USER="0",
        PYTHONPATH=str(ROOT),
    )
    return env


def prepare_database(
    directory: Path, rooms: list[str], senders: list[str]
) -> tuple[Path, dict[str, str]]:
    """Migrate a SQLite file, create the rooms and the senders; (file, {sender: session key})."""
    database = directory / "template.sqlite3"
    env = base_env(database)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    code = (
        "import json\n"
        "from django.contrib.auth import get_user_model, HASH_SESSION_KEY, SESSION_KEY, "
        "BACKEND_SESSION_KEY\n"
        "from django.contrib.sessions.backends.db import SessionStore\n"
        "from chat.models import Room\n"
        f"for slug in {rooms!r}:\n"
        "    Room.objects.get_or_create(slug=slug, defaults={'title': slug})\n"
        "keys = {}\n"
        f"for name in {senders!r}:\n"
        "    user, _ = get_user_model().objects.get_or_create(username=name)\n"
        "    user.set_unusable_password(); user.save()\n"
        "    session = SessionStore()\n"
        "    session[SESSION_KEY] = str(user.pk)\n"
        "    session[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
        "    session[HASH_SESSION_KEY] = user.get_session_auth_hash()\n"
        "    session.create()\n"
        "    keys[name] = session.session_key\n"
        "print(json.dumps(keys))\n"
    )
    output = subprocess.run(
        [PYTHON, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return database, json.loads(output.strip().splitlines()[-1])


def _raise_child_file_limit() -> None:
    raise_open_file_limit()


class Server:
    """One server process serving config.asgi:application on a copy of the template database."""

    def __init__(self, server: str, layer: str, redis_url: str, template: Path) -> None:
        if server not in SERVERS or layer not in LAYERS:
            raise ValueError(f"server must be one of {SERVERS}, layer one of {LAYERS}")
        self.server, self.layer = server, layer
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="sb-bench-server-", dir=MEMORY_DISK))
        database = self.directory / "db.sqlite3"
        shutil.copy(template, database)
        self.env = {
            **base_env(database),
            "REDIS_URL": redis_url,
            "SWITCHBOARD_CHANNEL_LAYER": layer,
        }
        self.process: subprocess.Popen | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def command(self) -> list[str]:
        if self.server == "daphne":
            # As deployed (Dockerfile): a 30 s handshake timeout instead of Daphne's 5 s, so a
            # burst of thousands of connections queues instead of being cut off.
            return [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                    "--websocket_connect_timeout", "30",
                    "--access-log", os.devnull, "config.asgi:application"]  # fmt: skip
        return [PYTHON, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                "--port", str(self.port), "--no-access-log", "--log-level", "warning",
                "--lifespan", "off"]  # fmt: skip

    def __enter__(self) -> Server:
        self.log = open(self.directory / "server.log", "w")
        self.process = subprocess.Popen(
            self.command(), cwd=ROOT, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=_raise_child_file_limit,
        )  # fmt: skip
        wait_for_port(self.port, self.process)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.process is not None:
            stop(self.process)
        self.log.close()
        if kind is not None:
            sys.stderr.write((self.directory / "server.log").read_text()[-3000:])
        shutil.rmtree(self.directory, ignore_errors=True)


def setup_django_in_process(directory: str | Path) -> None:
    """Set Django up in this process (the in-process benchmarks) on a fresh, migrated SQLite file in
    `directory`: development settings, quiet logs, no Redis (the in-memory layer)."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ["DATABASE_URL"] = f"sqlite:///{directory}/bench.sqlite3"
    os.environ["DJANGO_LOG_LEVEL"] = "WARNING"
    os.environ.pop("REDIS_URL", None)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
