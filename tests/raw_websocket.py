"""A WebSocket client that does what browsers and the `websockets` library refuse to: it keeps
sending frames after the server closed the socket, and it never reads unless asked. The attack
tests use it to prove that nothing the server refused runs.

    socket = RawWebSocket.open(port, "/ws/chat/admin/", origin=url, session=key)
    socket.send_text('{"type": "announce", "text": "pwned"}')   # right after the 101
    code = socket.close_code(timeout=5)                          # 4403, say
    socket.send_text('{"type": "announce", "text": "again"}')    # after the close: ignored
    socket.abort()

Frames are RFC 6455: client frames masked, text opcode 1, close opcode 8 (a 2-byte code first).
"""

from __future__ import annotations

import base64
import os
import socket
import struct
import time

OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8


class RawWebSocket:
    """One raw client connection on 127.0.0.1 (see module docstring)."""

    def __init__(self, sock: socket.socket, leftover: bytes) -> None:
        self.sock = sock
        self.buffer = leftover
        self.frames: list[tuple[int, bytes]] = []

    @classmethod
    def open(
        cls, port: int, path: str, *, origin: str, session: str | None = None, timeout: float = 10
    ) -> RawWebSocket:
        """Connect and do the opening handshake; raises unless the server answers 101."""
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        return cls.handshake(sock, port, path, origin, session, timeout)

    @classmethod
    def handshake(
        cls,
        sock: socket.socket,
        port: int,
        path: str,
        origin: str,
        session: str | None = None,
        timeout: float = 10,
    ) -> RawWebSocket:
        """The opening handshake on a connected socket (one the caller tuned, say)."""
        sock.settimeout(timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            f"Origin: {origin}",
        ]
        if session:
            lines.append(f"Cookie: sessionid={session}")
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        response = b""
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in response:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no handshake answer from {path}")
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError(f"{path}: connection closed during the handshake")
            response += chunk
        head, _, rest = response.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0]
        if b" 101 " not in status:
            sock.close()
            raise ConnectionError(f"{path}: expected 101 Switching Protocols, got {status!r}")
        return cls(sock, rest)

    # --- sending (never refused: that is the point) -------------------------------------------

    def send_frame(self, opcode: int, payload: bytes) -> bool:
        """Send one masked frame; False if the connection is already gone."""
        header = bytes([0x80 | opcode])
        length = len(payload)
        if length < 126:
            header += bytes([0x80 | length])
        elif length < 2**16:
            header += bytes([0x80 | 126]) + struct.pack("!H", length)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", length)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        try:
            self.sock.sendall(header + mask + masked)
        except OSError:
            return False
        return True

    def send_text(self, text: str) -> bool:
        return self.send_frame(OPCODE_TEXT, text.encode())

    # --- receiving ----------------------------------------------------------------------------

    def _read_frame(self, deadline: float) -> tuple[int, bytes] | None:
        while True:
            frame = self._parse()
            if frame is not None:
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return None
            except OSError:
                chunk = b""
            if not chunk:
                raise ConnectionError("the server dropped the connection")
            self.buffer += chunk

    def _parse(self) -> tuple[int, bytes] | None:
        data = self.buffer
        if len(data) < 2:
            return None
        opcode, length, offset = data[0] & 0x0F, data[1] & 0x7F, 2
        if length == 126:
            if len(data) < 4:
                return None
            (length,) = struct.unpack("!H", data[2:4])
            offset = 4
        elif length == 127:
            if len(data) < 10:
                return None
            (length,) = struct.unpack("!Q", data[2:10])
            offset = 10
        if len(data) < offset + length:
            return None
        self.buffer = data[offset + length :]
        return opcode, data[offset : offset + length]

    def texts_until_close(self, timeout: float = 5.0) -> tuple[list[str], int | None]:
        """Every text frame until the server's close frame, and its close code (None: no close
        within `timeout`, or the connection dropped without one)."""
        deadline = time.monotonic() + timeout
        texts: list[str] = []
        while True:
            try:
                frame = self._read_frame(deadline)
            except ConnectionError:
                return texts, None
            if frame is None:
                return texts, None
            opcode, payload = frame
            if opcode == OPCODE_TEXT:
                texts.append(payload.decode())
            elif opcode == OPCODE_CLOSE:
                return texts, struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None

    def abort(self) -> None:
        self.sock.close()
