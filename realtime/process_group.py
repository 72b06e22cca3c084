"""Several server processes on one listening socket: ``manage.py serve --processes N``.

Daphne runs one event loop on one core; a machine with N cores runs N of them. The parent binds
the listening socket once and starts N copies of ``manage.py serve --fd <fd>`` that inherit it:
each accepts connections from the same queue, so the kernel spreads them over the processes, and
the port is never closed while one of them restarts. The parent only supervises:

- a process that dies is started again (after 1 s, doubling up to 30 s while it keeps dying
  within 30 s of its start); its sockets are gone, and their clients reconnect (to any process);
- SIGTERM or SIGINT stops them all: the parent closes its copy of the socket, each process gets
  SIGTERM once and drains as a single ``serve`` does (it stops listening, closes WebSockets with
  1012, lets requests finish), SIGKILL after ``stop_timeout``; the parent exits with 0 once all
  are gone. The processes run in their own session, so a Ctrl-C in a terminal reaches only the
  parent, which passes it on once.

Processes share nothing but the socket: groups, presence and rate limits must live in a shared
channel layer and Redis (``REDIS_URL``), which ``serve`` checks before starting more than one.
"""

from __future__ import annotations

import logging
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

logger = logging.getLogger("realtime.serve")

RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 30.0
POLL_INTERVAL = 0.2


def listening_socket(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A bound, listening TCP socket that child processes can inherit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.create_server((host, port), family=family, backlog=backlog)
    sock.set_inheritable(True)
    return sock


@dataclass
class Member:
    """One process of the group: how to start it, and its restart back-off."""

    command: list[str]
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    restart_delay: float = RESTART_DELAY
    restart_at: float | None = None


@dataclass
class ProcessGroup:
    """Runs ``commands`` (one process each) sharing ``listening``, until SIGTERM/SIGINT."""

    commands: Sequence[list[str]]
    listening: socket.socket
    stop_timeout: float = 30.0
    members: list[Member] = field(default_factory=list)
    stopping: bool = False

    def run(self, on_started: Callable[[], None] | None = None) -> int:
        previous = {
            sig: signal.signal(sig, self._request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.members = [Member(list(command)) for command in self.commands]
            for member in self.members:
                self._start(member)
            if on_started is not None:
                on_started()
            while not self.stopping:
                self._supervise()
                time.sleep(POLL_INTERVAL)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def pids(self) -> list[int]:
        return [m.process.pid for m in self.members if m.process and m.process.poll() is None]

    def _request_stop(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def _start(self, member: Member) -> None:
        member.process = subprocess.Popen(
            member.command, pass_fds=(self.listening.fileno(),), start_new_session=True
        )
        member.started_at = time.monotonic()
        member.restart_at = None

    def _supervise(self) -> None:
        now = time.monotonic()
        for index, member in enumerate(self.members):
            process = member.process
            if member.restart_at is not None:
                if now >= member.restart_at:
                    self._start(member)
                continue
            if process is None or process.poll() is None:
                continue
            if now - member.started_at > MAX_RESTART_DELAY:
                member.restart_delay = RESTART_DELAY  # it had been running fine
            logger.warning(
                "Server process %d (pid %d) exited with %s; starting it again in %.0fs",
                index,
                process.pid,
                process.returncode,
                member.restart_delay,
            )
            member.restart_at = now + member.restart_delay
            member.restart_delay = min(MAX_RESTART_DELAY, member.restart_delay * 2)

    def _stop_all(self) -> None:
        # Once every process stopped listening too, the port refuses new connections instead
        # of queueing them for nobody.
        self.listening.close()
        running = [m.process for m in self.members if m.process and m.process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                logger.warning("Server process %d did not stop; killing it", process.pid)
                process.kill()
                process.wait()
