"""Realtime figures for ``make bench`` (issue 3).

- Time to the first ``delta``: 50 concurrent SSE clients ask 200 questions.
- Idle WebSockets one gevent web process holds, and its memory per socket.
- Fan-out: events per second and p99 latency to 1,000 connected sockets.

The socket benchmarks use a minimal selector-driven WebSocket client below,
because a thread per client (as a normal client library would use) would
measure the benchmark, not the server.
"""

from __future__ import annotations

import base64
import json
import secrets
import selectors
import socket
import statistics
import struct
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from shared.clients import get_redis
from shared.eventlog import EventLog
from shared.settings import Settings

SSE_CLIENTS = 50
SSE_QUESTIONS = 200
IDLE_SOCKETS = 5000
FANOUT_SOCKETS = 1000
FANOUT_EVENTS = 100


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


class RawSocket:
    """Just enough of a WebSocket client: handshake, masked text frames out, frames in."""

    def __init__(self, host: str, port: int, origin: str) -> None:
        self.sock = socket.create_connection((host, port), timeout=30)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.sock.sendall(
            (
                f"GET /ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n"
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
        self.buffer = head.split(b"\r\n\r\n", 1)[1]
        self.sock.setblocking(False)

    def send_text(self, text: str) -> None:
        payload = text.encode()
        mask = secrets.token_bytes(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x81, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x81, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x81, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.setblocking(True)
        self.sock.sendall(header + mask + masked)
        self.sock.setblocking(False)

    def frames(self) -> Iterator[dict[str, Any]]:
        """Parse the complete text frames received so far."""
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buffer += chunk
        except BlockingIOError:
            pass
        while len(self.buffer) >= 2:
            opcode, length = self.buffer[0] & 0x0F, self.buffer[1] & 0x7F
            offset = 2
            if length == 126:
                if len(self.buffer) < 4:
                    return
                (length,) = struct.unpack("!H", self.buffer[2:4])
                offset = 4
            elif length == 127:
                if len(self.buffer) < 10:
                    return
                (length,) = struct.unpack("!Q", self.buffer[2:10])
                offset = 10
            if len(self.buffer) < offset + length:
                return
            payload, self.buffer = (
                self.buffer[offset : offset + length],
                self.buffer[offset + length :],
            )
            if opcode == 0x1:
                yield json.loads(payload)


def open_sockets(port: int, origin: str, token: str, count: int) -> list[RawSocket]:
    sockets = []
    for _ in range(count):
        raw = RawSocket("127.0.0.1", port, origin)
        raw.send_text(json.dumps({"type": "auth", "token": token}))
        sockets.append(raw)
    pump(sockets, lambda s, f: f.get("type") == "ready", expected=count, timeout=120)
    return sockets


def pump(
    sockets: list[RawSocket],
    on_frame: Callable[[RawSocket, dict[str, Any]], bool],
    *,
    expected: int,
    timeout: float,
) -> int:
    """Read frames from all sockets until ``on_frame`` returned True ``expected`` times."""
    selector = selectors.DefaultSelector()
    for raw in sockets:
        selector.register(raw.sock, selectors.EVENT_READ, raw)
    matched = 0
    deadline = time.monotonic() + timeout
    try:
        while matched < expected and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.5):
                for frame in key.data.frames():
                    if frame.get("type") == "ping":  # the server's heartbeat: answer or be closed
                        key.data.send_text('{"type":"pong"}')
                    if on_frame(key.data, frame):
                        matched += 1
    finally:
        selector.close()
    return matched


def worker_rss_bytes(master_pid: int) -> int:
    """Resident memory of the (single) gunicorn worker process under ``master_pid``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        if f"PPid:\t{master_pid}\n" in status:
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    raise RuntimeError("no gunicorn worker found")


def first_delta_times(base: str, token: str) -> tuple[list[float], list[float]]:
    """(seconds to first delta, Elasticsearch seconds) per question, 50 clients at once."""
    questions = ["interviews", "offer letter", "receipt", "recruiter", "newsletter", "photos"]

    def ask(number: int) -> tuple[float, float]:
        url = f"{base}/api/chat/stream?q={questions[number % len(questions)].replace(' ', '+')}"
        request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
        started = time.perf_counter()
        first_delta = 0.0
        with urllib.request.urlopen(request, timeout=120) as response:
            event = ""
            for raw in response:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "delta" and not first_delta:
                    first_delta = time.perf_counter() - started
                elif line.startswith("data: ") and event == "done":
                    return first_delta, float(json.loads(line[6:])["data"]["elasticsearch_seconds"])
        raise RuntimeError("stream ended without done")

    with ThreadPoolExecutor(SSE_CLIENTS) as pool:
        results = list(pool.map(ask, range(SSE_QUESTIONS)))
    return [r[0] for r in results], [r[1] for r in results]


def fanout(settings: Settings, sockets: list[RawSocket], user_id: str) -> tuple[float, float]:
    """(events/s delivered to all sockets, p99 seconds from append to receipt)."""
    events = EventLog(get_redis(settings), settings)
    stream = events.user_stream(user_id)
    latencies: list[float] = []
    done = threading.Event()

    def on_frame(_: RawSocket, frame: dict[str, Any]) -> bool:
        if frame.get("type") != "bench":
            return False
        latencies.append(time.time() - frame["data"]["sent_at"])
        return True

    expected = len(sockets) * FANOUT_EVENTS
    counted: list[int] = []
    reader = threading.Thread(
        target=lambda: (
            counted.append(pump(sockets, on_frame, expected=expected, timeout=300)),
            done.set(),
        )
    )
    reader.start()
    started = time.perf_counter()
    for number in range(FANOUT_EVENTS):
        events.append(
            stream,
            "bench",
            {"sent_at": time.time()},
            dedup_key=f"bench:{number}:{secrets.token_hex(3)}",
        )
        time.sleep(0.01)
    done.wait(320)
    elapsed = time.perf_counter() - started
    reader.join()
    if counted[0] != expected:
        raise RuntimeError(f"fan-out delivered {counted[0]} of {expected} frames")
    return expected / elapsed, percentile(latencies, 0.99)


def run(
    settings: Settings, base: str, port: int, master_pid: int, token: str, user_id: str
) -> list[str]:
    """All realtime figures, as printable lines."""
    lines = []
    deltas, es = first_delta_times(base, token)
    lines.append(
        f"time to first delta, {SSE_CLIENTS} SSE clients x {SSE_QUESTIONS} questions: "
        f"p50 {percentile(deltas, 0.5) * 1000:.0f} ms, p99 {percentile(deltas, 0.99) * 1000:.0f} ms "
        f"(Elasticsearch alone: p50 {statistics.median(es) * 1000:.0f} ms, p99 {percentile(es, 0.99) * 1000:.0f} ms)"
    )
    origin = base
    before = worker_rss_bytes(master_pid)
    idle = open_sockets(port, origin, token, IDLE_SOCKETS)
    time.sleep(2)
    after = worker_rss_bytes(master_pid)
    lines.append(
        f"idle WebSockets held by one web process: {len(idle)}, "
        f"{(after - before) / len(idle) / 1024:.1f} KiB each (worker RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MiB)"
    )
    for raw in idle[FANOUT_SOCKETS:]:
        raw.sock.close()
    rate, p99 = fanout(settings, idle[:FANOUT_SOCKETS], user_id)
    lines.append(
        f"fan-out to {FANOUT_SOCKETS} sockets, {FANOUT_EVENTS} events: {rate:,.0f} frames/s, p99 latency {p99 * 1000:.0f} ms"
    )
    for raw in idle[:FANOUT_SOCKETS]:
        raw.sock.close()
    return lines


def raise_fd_limit() -> None:
    import resource

    """Thousands of sockets need thousands of descriptors, here and in gunicorn (inherited)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
