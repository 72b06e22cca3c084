"""A scripted fake APRS-IS server on 127.0.0.1, the one mock the news tests use (the real network
is not reachable from tests). It runs in a thread, so sync and async tests can both use it.

    server = FakeAPRSIS([
        [b"# aprsc 2.1.19\\r\\n", LOGIN, b"# logresp N0CALL unverified\\r\\n", CLOSE],
        [LOGIN, b"K1ABC>APRS:>back\\r\\n"],   # second connection: stays open after the script
    ]).start()
    ...
    server.logins   # [b"user N0CALL pass -1 vers ...\\r\\n", ...]
    server.stop()

Script steps per connection: bytes are sent, a float sleeps, LOGIN waits for the client's login
line, CLOSE drops the connection. A connection whose script ended stays open, silent, until the
client closes it (recorded in `closed_by_client`) or the server stops.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time

LOGIN = "login"
CLOSE = "close"


class FakeAPRSIS:
    def __init__(self, scripts: list[list]) -> None:
        self.scripts = scripts
        self.logins: list[bytes] = []
        self.connections = 0
        self.closed_by_client: list[int] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="fake-aprs-is", daemon=True)
        self._handlers: list[threading.Thread] = []

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> FakeAPRSIS:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(5)
        for handler in self._handlers:
            handler.join(5)
        self._listener.close()

    def wait_for(self, condition, timeout: float = 15.0) -> None:
        """Block until `condition()` is true (AssertionError after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out; logins={self.logins} connections={self.connections}"
                )
            time.sleep(0.02)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            index = self.connections
            self.connections += 1
            script = self.scripts[index] if index < len(self.scripts) else []
            handler = threading.Thread(target=self._handle, args=(connection, index, script))
            handler.start()
            self._handlers.append(handler)

    def _handle(self, connection: socket.socket, index: int, script: list) -> None:
        connection.settimeout(0.1)
        buffer = b""
        with connection:
            for step in script:
                if self._stopping.is_set():
                    return
                if step == CLOSE:
                    return
                if step == LOGIN:
                    buffer = self._read_login(connection, buffer)
                elif isinstance(step, float | int):
                    time.sleep(step)
                else:
                    connection.sendall(step)
            while not self._stopping.is_set():
                try:
                    data = connection.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.closed_by_client.append(index)
                    return
                buffer = self._take_login(buffer + data)

    def _read_login(self, connection: socket.socket, buffer: bytes) -> bytes:
        deadline = time.monotonic() + 10
        while b"\n" not in buffer and time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                data = connection.recv(4096)
                if not data:
                    break
                buffer += data
        return self._take_login(buffer)

    def _take_login(self, buffer: bytes) -> bytes:
        while b"\n" in buffer:
            line, _, buffer = buffer.partition(b"\n")
            self.logins.append(line + b"\n")
        return buffer
