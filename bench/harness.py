"""What the whole-stack benchmarks share: a private redis-server, a prepared SQLite database with
rooms and logged-in senders, and one Switchboard server process (Daphne or uvicorn) on a chosen
channel layer. Everything listens on 127.0.0.1 on free ports and is stopped by its PID.

    redis = private_redis()
    template = prepare_database(work_dir, rooms=["lobby"], senders=["s0", "s1"])
    with Server("daphne", "switchboard", redis.url, template) as server:
        ... websockets to server.ws_url(f"/ws/chat/lobby/") with server.origin ...

The same `Server` also runs `manage.py serve` (server "serve") and the Channels tutorial app in
`bench/reference_app/` (`ReferenceServer`), optionally pinned to one CPU (taskset) and started
under `bench/server_probe.py`, which reports the process's full-collection pause on demand.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.servers import (  # noqa: E402  (the repository root is on the path only now)
    PYTHON,
    RedisServer,
    free_port,
    login_session_code,
    stop_process,
    wait_for_port,
)

SERVERS = ("daphne", "uvicorn", "serve")
REFERENCE_APP = ROOT / "bench" / "reference_app"
PROBE = ROOT / "bench" / "server_probe.py"
LAYERS = ("switchboard", "channels_redis", "channels_redis_pubsub")
LAYER_TITLES = {
    "switchboard": "Switchboard Redis layer",
    "channels_redis": "channels_redis core",
    "channels_redis_pubsub": "channels_redis pub/sub",
}


def raise_open_file_limit(wanted: int = 16384) -> int:
    """Raise this process's soft RLIMIT_NOFILE towards `wanted` (capped by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def private_redis() -> RedisServer:
    """A started redis-server for one benchmark run (room for thousands of clients); the caller
    calls `.cleanup()` (stops it, removes its directory)."""
    server = RedisServer(max_clients=20000)
    server.start()
    return server


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
        # The apps compared with limit neither the messages one user posts nor the frames one
        # socket sends: scenario a's five senders each post as soon as their last message is
        # echoed, far over a person's 20 frames a second.
        SWITCHBOARD_CHAT_RATE_LIMIT="1000000/1",
        SWITCHBOARD_FRAMES_PER_SECOND="1000000",
        # The clients connect from http://127.0.0.1:<port>, not the https origin production wants,
        # and hold many sockets per user.
        SWITCHBOARD_STRICT_ORIGINS="0",
        SWITCHBOARD_MAX_SOCKETS_PER_USER="0",
        SWITCHBOARD_MAX_POLLS_PER_USER="0",
        PYTHONPATH=str(ROOT),
    )
    return env


def prepare_database(
    directory: Path, rooms: list[str], senders: list[str], messages_per_room: int = 0
) -> tuple[Path, dict[str, str]]:
    """Migrate a SQLite file, create the rooms and the senders; (file, {sender: session key}).
    With `messages_per_room`, the first sender posts that many messages in every room (a
    connecting socket then gets a full history page, as in a room in use)."""
    database = directory / "template.sqlite3"
    env = base_env(database)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    code = (
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from chat.models import Room\n"
        f"for slug in {rooms!r}:\n"
        "    Room.objects.get_or_create(slug=slug, defaults={'title': slug})\n"
        "keys = {}\n"
        f"for name in {senders!r}:\n"
        "    u, _ = get_user_model().objects.get_or_create(username=name)\n"
        "    u.set_unusable_password(); u.save()\n"
        + "".join(f"    {line}\n" for line in login_session_code("u").splitlines())
        + "    keys[name] = key\n"
        f"if {messages_per_room} and {senders!r}:\n"
        "    from chat import services\n"
        f"    author = get_user_model().objects.get(username={senders!r}[0])\n"
        "    for room in Room.objects.all():\n"
        f"        for n in range({messages_per_room}):\n"
        "            services.post_message(author, room, f'earlier message {n}')\n"
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

    cwd = ROOT

    def __init__(
        self,
        server: str,
        layer: str,
        redis_url: str,
        template: Path | None,
        *,
        cpu: int | None = None,
        probe: bool = False,
    ) -> None:
        """`cpu`: pin the process to that CPU (taskset); `probe`: run it under
        `server_probe.py`, so that `full_collection_ms()` can ask it for a timed gc.collect()."""
        if server not in SERVERS or layer not in LAYERS:
            raise ValueError(f"server must be one of {SERVERS}, layer one of {LAYERS}")
        self.server, self.layer = server, layer
        self.cpu, self.probe = cpu, probe
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="sb-bench-server-", dir=MEMORY_DISK))
        self.probe_file = self.directory / "probe.json"
        database = self.directory / "db.sqlite3"
        if template is not None:
            shutil.copy(template, database)
        self.env = self.environment(database, redis_url)
        self.env["SB_BENCH_PROBE_FILE"] = str(self.probe_file)
        self.process: subprocess.Popen | None = None

    def environment(self, database: Path, redis_url: str) -> dict[str, str]:
        return {
            **base_env(database),
            "REDIS_URL": redis_url,
            "SWITCHBOARD_CHANNEL_LAYER": self.layer,
            # The clients' Origin: plain http on 127.0.0.1 (with DEBUG off only https origins
            # are allowed unless the setting says otherwise).
            "SWITCHBOARD_ALLOWED_ORIGINS": self.origin,
        }

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def command(self) -> list[str]:
        command = self.server_command()
        if self.probe:
            command = [command[0], str(PROBE), *command[1:]]
        if self.cpu is not None and shutil.which("taskset"):
            command = ["taskset", "-c", str(self.cpu), *command]
        return command

    def server_command(self) -> list[str]:
        if self.server == "serve":
            return [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                    "--verbosity", "0"]  # fmt: skip
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
            self.command(), cwd=self.cwd, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
            preexec_fn=_raise_child_file_limit,
        )  # fmt: skip
        wait_for_port(self.port, process=self.process)
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_bytes(self) -> int:
        """The server process's resident set size, from /proc."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS in /proc/{self.pid}/status")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server process has used so far, from /proc: unlike wall
        time, it does not grow when other work on a shared machine takes the CPU."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def full_collection(self, timeout: float = 30) -> dict:
        """Ask the probe (SIGUSR1) for a timed full gc.collect(); its report (see server_probe)."""
        if not self.probe:
            raise RuntimeError("start the Server with probe=True to time its collections")
        self.probe_file.unlink(missing_ok=True)
        os.kill(self.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                return json.loads(self.probe_file.read_text())
            time.sleep(0.05)
        raise TimeoutError(f"the server's probe did not answer within {timeout}s")

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.process is not None:
            stop_process(self.process)
        self.log.close()
        if kind is not None:
            sys.stderr.write((self.directory / "server.log").read_text()[-3000:])
        shutil.rmtree(self.directory, ignore_errors=True)


class ReferenceServer(Server):
    """The Channels tutorial app (`bench/reference_app/`) on Daphne, with channels_redis core
    ("channels_redis") or pub/sub ("channels_redis_pubsub") on `redis_url`. It saves nothing, so
    it needs no database content; it runs with only its own directory on the path."""

    cwd = REFERENCE_APP

    def __init__(self, layer: str, redis_url: str, **options: int | bool | None) -> None:
        if layer not in ("channels_redis", "channels_redis_pubsub"):
            raise ValueError(f"the reference app runs on channels_redis only, not {layer!r}")
        super().__init__("daphne", layer, redis_url, None, **options)  # type: ignore[arg-type]

    def environment(self, database: Path, redis_url: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "SWITCHBOARD_"))}
        env.pop("REDIS_URL", None)
        env.update(
            DJANGO_SETTINGS_MODULE="mysite.settings",
            PYTHONPATH=str(REFERENCE_APP),
            REFERENCE_REDIS_URL=redis_url,
            REFERENCE_LAYER="pubsub" if self.layer == "channels_redis_pubsub" else "core",
            REFERENCE_DATABASE=str(database),
            REFERENCE_SECRET_KEY=SECRET_KEY,
        )
        return env

    def server_command(self) -> list[str]:
        return [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
                "--websocket_connect_timeout", "30",
                "--access-log", os.devnull, "mysite.asgi:application"]  # fmt: skip


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


@contextlib.contextmanager
def profiled(server: Server, output: Path | None) -> Iterator[None]:
    """Sample `server` with py-spy while the block runs, into `output` (collapsed stacks, one
    line per stack and its count; nothing when `output` is None). Only the thread holding the
    GIL is sampled, so the counts are where the process's Python time went (the garbage
    collector's time shows in whichever line allocated when a collection started)."""
    if output is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    command = [spy, "record", "--pid", str(server.pid), "--gil", "--threads", "--rate", "250",
               "--format", "raw", "--output", str(output), "--duration", "120"]  # fmt: skip
    recorder = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)  # py-spy attaches
    try:
        yield
    finally:
        recorder.send_signal(signal.SIGINT)  # py-spy writes what it sampled, then exits
        try:
            recorder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            stop_process(recorder)


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]
