"""The processes the test suite and the benchmarks start, and how they start and stop them: free
ports on 127.0.0.1, waiting for a port or a condition with a deadline (never a fixed sleep), and
stopping exactly the processes one started, by PID (SIGTERM, then SIGKILL).

    RedisServer     a private redis-server on a free port (.url, .start(), .stop(), .restart())
    RedisShards     three independent redis-servers (.urls, .servers)
    RedisCluster    a 3-master Redis Cluster (.url, .urls, .kill(i), .start_node(i), .reshard(...))
    LiveServer      Daphne processes (`manage.py serve`) on one database (.manage(), .shell(),
                    .create_user(), .start_daphne(), .start_process(), .log())
    PostgresServer  a private PostgreSQL cluster (its .url is a DATABASE_URL)

The fixtures that make these for a test session live in the root conftest.py; bench/harness.py
uses the same helpers for the benchmarks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def wait_for(
    condition: Callable[[], Any], timeout: float = 15.0, message: str = "condition"
) -> Any:
    """Poll `condition` until it returns something true (returned) or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} not reached within {timeout}s")
        time.sleep(0.05)


@contextlib.contextmanager
def daphne_serving(application: str, log_directory: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """Plain `daphne` serving `application` (a dotted "module:attribute" path) on a free port of
    127.0.0.1, with DEBUG settings and no Redis; yields (port, process) and stops it after."""
    port = free_port()
    log = open(log_directory / "daphne.log", "w")  # noqa: SIM115
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "DJANGO_DEBUG": "1",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [PYTHON, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), application],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, process=process)
        yield port, process
    finally:
        stop_process(process)
        log.close()


def login_session_code(username_expression: str = "u") -> str:
    """Python for `manage.py shell` that makes a logged-in session for the user the expression
    names and leaves its key in `key` (the server process's own settings and database)."""
    return (
        "from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY\n"
        "from django.contrib.sessions.backends.db import SessionStore\n"
        "s = SessionStore()\n"
        f"s[SESSION_KEY] = str({username_expression}.pk)\n"
        "s[BACKEND_SESSION_KEY] = 'django.contrib.auth.backends.ModelBackend'\n"
        f"s[HASH_SESSION_KEY] = {username_expression}.get_session_auth_hash()\n"
        "s.create()\n"
        "key = s.session_key\n"
    )


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
    """A private redis-server on a free port that a test may stop and start again (`cleanup()`
    stops it and removes its directory). Benchmarks raise `max_clients` for their thousands of
    connections."""

    port: int = field(default_factory=free_port)
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sb-redis-")))
    process: subprocess.Popen | None = None
    max_clients: int | None = None

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
                *(["--maxclients", str(self.max_clients)] if self.max_clients else []),
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


@dataclass
class RedisShards:
    """Three independent private redis-servers (the layer shards over them with ``hosts``)."""

    servers: list[RedisServer] = field(default_factory=lambda: [RedisServer() for _ in range(3)])

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def start(self) -> None:
        for server in self.servers:
            server.start()

    def flushall(self) -> None:
        for server in self.servers:
            server.flushall()

    def cleanup(self) -> None:
        for server in self.servers:
            server.cleanup()


@dataclass
class ClusterNode:
    """One redis-server of a RedisCluster: its client port, its cluster-bus port, its process."""

    port: int
    bus_port: int
    directory: Path
    process: subprocess.Popen | None = None

    def start(self) -> None:
        if self.process is not None and self.process.poll() is None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-port", str(self.bus_port),
                "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", "2000",
                # A master that is down takes only its own slots with it.
                "--cluster-require-full-coverage", "no",
                # What a master accepted survives its being killed and restarted.
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
                "--dir", str(self.directory),
                "--logfile", str(self.directory / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for_port(self.port, process=self.process)

    def kill(self) -> None:
        """SIGKILL, as a crashed machine would stop."""
        if self.process is not None:
            stop_process(self.process, signal.SIGKILL)
            self.process = None

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def client(self):  # -> redis.Redis
        import redis

        return redis.Redis(port=self.port, socket_timeout=10)


@dataclass
class RedisCluster:
    """A private 3-master Redis Cluster (no replicas) on free ports of 127.0.0.1."""

    size: int = 3
    directory: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="sb-cluster-")))
    nodes: list[ClusterNode] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.nodes[0].port}"

    @property
    def urls(self) -> list[str]:
        return [f"redis://127.0.0.1:{node.port}" for node in self.nodes]

    def start(self) -> None:
        ports = set()
        while len(ports) < 2 * self.size:
            ports.add(free_port())
        ordered = sorted(ports)
        for index in range(self.size):
            node = ClusterNode(
                ordered[2 * index], ordered[2 * index + 1], self.directory / str(index)
            )
            self.nodes.append(node)
            node.start()
        subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "--cluster", "create",
             *(f"127.0.0.1:{node.port}" for node in self.nodes),
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self.wait_until_healthy()

    def wait_until_healthy(self, timeout: float = 30) -> None:
        """Until every running node says the cluster is ok and knows all slots."""
        deadline = time.monotonic() + timeout
        while True:
            states = []
            for node in self.nodes:
                if node.process is None:
                    continue
                with contextlib.suppress(Exception):
                    client = node.client()
                    info = client.cluster("INFO")
                    client.close()
                    states.append(
                        info.get("cluster_state") == "ok"
                        and int(info.get("cluster_slots_ok", 0)) == 16384
                    )
                    continue
                states.append(False)
            if states and all(states):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"cluster in {self.directory} not healthy within {timeout}s")
            time.sleep(0.1)

    def node_id(self, index: int) -> str:
        client = self.nodes[index].client()
        try:
            return client.execute_command("CLUSTER", "MYID").decode()
        finally:
            client.close()

    def kill(self, index: int) -> None:
        self.nodes[index].kill()

    def add_replica(self, master: int) -> int:
        """Start a node replicating master ``master``; its index in ``nodes``."""
        ports = set()
        while len(ports) < 2:
            ports.add(free_port())
        port, bus_port = sorted(ports)
        node = ClusterNode(port, bus_port, self.directory / str(len(self.nodes)))
        node.start()
        self.nodes.append(node)
        subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "--cluster", "add-node",
             f"127.0.0.1:{port}", f"127.0.0.1:{self.nodes[master].port}",
             "--cluster-slave", "--cluster-master-id", self.node_id(master)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        client = node.client()
        try:
            while client.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    raise TimeoutError(f"replica on port {port} did not sync with its master")
                time.sleep(0.1)
        finally:
            client.close()
        return len(self.nodes) - 1

    def take_over(self, replica: int) -> None:
        """Promote a replica now (``CLUSTER FAILOVER TAKEOVER``: works with its master dead)."""
        client = self.nodes[replica].client()
        try:
            client.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
        finally:
            client.close()
        self.wait_until_healthy()

    def start_node(self, index: int) -> None:
        self.nodes[index].start()
        self.wait_until_healthy()

    def reshard(self, source: int, target: int, slots: int, timeout: float = 120) -> None:
        """Move ``slots`` slots from one master to another with ``redis-cli --cluster reshard``
        (keys move with MIGRATE while clients keep using them)."""
        subprocess.run(
            [shutil.which("redis-cli") or "redis-cli", "--cluster", "reshard",
             f"127.0.0.1:{self.nodes[0].port}",
             "--cluster-from", self.node_id(source), "--cluster-to", self.node_id(target),
             "--cluster-slots", str(slots), "--cluster-yes", "--cluster-pipeline", "10"],
            check=True, capture_output=True, timeout=timeout,
        )  # fmt: skip

    def flushall(self) -> None:
        for node in self.nodes:
            client = node.client()
            client.flushall()
            client.close()

    def cleanup(self) -> None:
        for node in self.nodes:
            node.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


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
            "from django.contrib.auth import get_user_model\n"
            f"u, _ = get_user_model().objects.get_or_create(username={username!r})\n"
            f"u.is_staff = u.is_superuser = {staff!r}\n"
            f"u.email = {username + '@example.com'!r}\n"
            # An unchanged password is left alone: setting it again would end the user's other
            # sessions (and close their sockets).
            f"if not u.check_password({password!r}): u.set_password({password!r})\n"
            "u.save()\n" + login_session_code("u") + "print(key)\n"
        )
        return self.shell(code).strip().splitlines()[-1]

    def create_sessions(self, usernames: list[str], staff: bool = False) -> dict[str, str]:
        """Create (or update) users without a usable password in one `manage.py shell` run and
        log each in; {username: session key for the `sessionid` cookie}."""
        code = (
            "import json\n"
            "from django.contrib.auth import get_user_model\n"
            "keys = {}\n"
            f"for name in {usernames!r}:\n"
            "    u, created = get_user_model().objects.get_or_create(username=name)\n"
            f"    u.is_staff = u.is_superuser = {staff!r}\n"
            "    if created: u.set_unusable_password()\n"
            "    u.save()\n"
            + "".join(f"    {line}\n" for line in login_session_code("u").splitlines())
            + "    keys[name] = key\n"
            "print(json.dumps(keys))\n"
        )
        return json.loads(self.shell(code).strip().splitlines()[-1])

    def start_daphne(
        self,
        extra_env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        port: int | None = None,
    ) -> int:
        """Start one more `manage.py serve` (plus `args`) on `port` (e.g. where a stopped one
        listened) or a free port; returns the port."""
        port = port or free_port()
        log = open(self.directory / f"daphne-{port}.log", "w")  # noqa: SIM115
        process = subprocess.Popen(
            [PYTHON, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port), *args],
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
        """Stop the Daphne on `port` (SIGTERM: it drains, its sockets close) and start a new one
        there."""
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
