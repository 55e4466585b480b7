"""A small test client for /ws on top of simple_websocket's own client."""

from __future__ import annotations

import json
import time
from typing import Any

from simple_websocket import Client, ConnectionClosed


class WsClient:
    def __init__(self, base: str, origin: str | None) -> None:
        url = base.replace("http://", "ws://") + "/ws"
        self.ws = Client.connect(url, headers={"Origin": origin} if origin else {})
        self.close_code: int | None = None

    def send(self, frame: dict[str, Any] | str) -> None:
        self.ws.send(frame if isinstance(frame, str) else json.dumps(frame))

    def receive(self, timeout: float = 10) -> dict[str, Any] | None:
        """The next frame, or None when the server closed the socket (close code kept)."""
        try:
            raw = self.ws.receive(timeout=timeout)
        except ConnectionClosed as closed:
            self.close_code = int(closed.reason)
            return None
        if raw is None:
            if not self.ws.connected:
                self.close_code = int(self.ws.close_reason)
                return None
            raise TimeoutError("no frame in time")
        return json.loads(raw)

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
        try:
            self.ws.close()
        except ConnectionClosed:
            pass
