"""A blocking test client for /ws, on the project's minimal WebSocket client."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

from bench.wsclient import Closed, RawSocket


class WsClient:
    def __init__(self, base: str, origin: str | None) -> None:
        url = urlsplit(base)
        self.raw = RawSocket(url.hostname or "127.0.0.1", url.port or 80, origin)
        self.close_code: int | None = None

    def send(self, frame: dict[str, Any] | str) -> None:
        self.raw.send_text(frame if isinstance(frame, str) else json.dumps(frame))

    def receive(self, timeout: float = 10) -> dict[str, Any] | None:
        """The next frame, or None when the server closed the socket (close code kept)."""
        try:
            return self.raw.receive(timeout)
        except Closed as closed:
            self.close_code = closed.code
            return None

    def receive_until(self, predicate, timeout: float = 20) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
        frames: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            frame = self.receive(timeout=max(0.1, deadline - time.monotonic()))
            if frame is None:
                return frames
            frames.append(frame)
            if predicate(frame):
                return frames
        raise TimeoutError(f"predicate never matched; got {[f.get('type') for f in frames]}")

    def wait_closed(self, timeout: float = 10) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.receive(timeout=0.5) is None:
                    return self.close_code
            except TimeoutError:
                continue
        return None

    def close(self) -> None:
        self.raw.close()
