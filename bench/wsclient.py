"""A minimal WebSocket client: handshake, masked text frames out, text and close frames in.

Used by the benchmarks (thousands of sockets on one selector, where a thread
per client would measure the client) and by the tests (which need the exact
close code even when the server's close frame arrives in the same packet as
its handshake response).
"""

from __future__ import annotations

import base64
import json
import secrets
import select
import socket
import struct
import time
from collections.abc import Iterator
from typing import Any

OPCODE_TEXT = 0x1
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9


class Closed(Exception):
    """The server closed the socket; ``code`` is its close code (1006 if it sent none)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class RawSocket:
    def __init__(
        self, host: str, port: int, origin: str | None, timeout: float = 30, path: str = "/ws"
    ) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        origin_header = f"Origin: {origin}\r\n" if origin else ""
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n{origin_header}\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during handshake")
            head += chunk
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(head[:200].decode(errors="replace"))
        # Whatever followed the handshake (even a close frame) is the first frame data.
        self.buffer = head.split(b"\r\n\r\n", 1)[1]
        self.close_code: int | None = None
        self.sock.setblocking(False)

    def send_text(self, text: str) -> None:
        self._send(OPCODE_TEXT, text.encode())

    def close(self, code: int = 1000) -> None:
        try:
            self._send(OPCODE_CLOSE, struct.pack("!H", code))
        except OSError:
            pass
        self.sock.close()

    def _send(self, opcode: int, payload: bytes) -> None:
        mask = secrets.token_bytes(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.setblocking(True)
        try:
            self.sock.sendall(header + mask + masked)
        finally:
            self.sock.setblocking(False)

    def frames(self) -> Iterator[dict[str, Any]]:
        """Complete text frames received so far, as JSON, without blocking; raises Closed at the end."""
        for text in self.texts():
            yield json.loads(text)

    def texts(self) -> Iterator[str]:
        """Complete text frames received so far, as text (a peer's protocol need not be JSON)."""
        eof = False
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    eof = True
                    break
                self.buffer += chunk
        except BlockingIOError:
            pass
        except OSError:
            eof = True
        while len(self.buffer) >= 2:
            opcode, length = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(self.buffer) < 4:
                    break
                (length,) = struct.unpack("!H", self.buffer[2:4])
                offset = 4
            elif length == 127:
                if len(self.buffer) < 10:
                    break
                (length,) = struct.unpack("!Q", self.buffer[2:10])
                offset = 10
            if len(self.buffer) < offset + length:
                break
            payload = self.buffer[offset : offset + length]
            self.buffer = self.buffer[offset + length :]
            if opcode == OPCODE_TEXT:
                yield payload.decode()
            elif opcode == OPCODE_CLOSE:
                self.close_code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise Closed(self.close_code)
        if eof:
            self.close_code = self.close_code or 1006
            raise Closed(self.close_code)

    def receive(self, timeout: float) -> dict[str, Any]:
        """The next text frame; raises TimeoutError, or Closed with the server's code."""
        deadline = time.monotonic() + timeout
        while True:
            # frames() consumes a frame from the buffer before yielding it, so taking
            # one and dropping the generator leaves the rest for the next call.
            frame = next(self.frames(), None)
            if frame is not None:
                return frame
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame in time")
            select.select([self.sock], [], [], remaining)
