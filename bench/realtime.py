"""Realtime figures for ``make bench`` (issue 3).

- Time to the first ``delta``: 50 concurrent SSE clients ask 200 questions.
- Idle WebSockets one gevent web process holds, and its memory per socket.
- Fan-out: events per second and p99 latency to 1,000 connected sockets.

The socket benchmarks use a minimal selector-driven WebSocket client below,
because a thread per client (as a normal client library would use) would
measure the benchmark, not the server.
"""

from __future__ import annotations

import json
import secrets
import selectors
import statistics
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench.wsclient import RawSocket
from shared.core.clients import get_redis
from shared.core.settings import Settings
from shared.realtime.eventlog import EventLog

SSE_CLIENTS = 50
SSE_QUESTIONS = 200
IDLE_SOCKETS = 5000
FANOUT_SOCKETS = 1000
FANOUT_EVENTS = 100


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def open_sockets(port: int, origin: str, token: str, count: int) -> list[RawSocket]:
    sockets = []
    for _ in range(count):
        raw = RawSocket("127.0.0.1", port, origin)
        raw.send_text(json.dumps({"type": "auth", "token": token}))
        sockets.append(raw)
    ready = pump(sockets, lambda s, f: f.get("type") == "ready", expected=count, timeout=120)
    if ready != count:
        raise RuntimeError(f"only {ready} of {count} sockets became ready")
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


def fanout(
    settings: Settings, sockets: list[RawSocket], user_id: str, events_count: int, interval: float
) -> tuple[float, float, float]:
    """Append ``events_count`` events ``interval`` s apart to a stream all ``sockets`` follow.

    Returns (frames/s delivered, p50 and p99 seconds from append to receipt).
    """
    events = EventLog(get_redis(settings), settings)
    stream = events.user_stream(user_id)
    latencies: list[float] = []

    def on_frame(_: RawSocket, frame: dict[str, Any]) -> bool:
        if frame.get("type") != "bench":
            return False
        latencies.append(time.time() - frame["data"]["sent_at"])
        return True

    expected = len(sockets) * events_count
    counted: list[int] = []
    reader = threading.Thread(
        target=lambda: counted.append(pump(sockets, on_frame, expected=expected, timeout=300))
    )
    reader.start()
    started = time.perf_counter()
    for number in range(events_count):
        events.append(
            stream,
            "bench",
            {"sent_at": time.time()},
            dedup_key=f"bench:{secrets.token_hex(6)}:{number}",
        )
        time.sleep(interval)
    reader.join()
    elapsed = time.perf_counter() - started
    if counted[0] != expected:
        raise RuntimeError(f"fan-out delivered {counted[0]} of {expected} frames")
    return expected / elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99)


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
    fan = idle[:FANOUT_SOCKETS]
    rate, _, p99 = fanout(settings, fan, user_id, FANOUT_EVENTS, 0.0)
    lines.append(
        f"fan-out burst, {FANOUT_EVENTS} events to {FANOUT_SOCKETS} sockets: {rate:,.0f} frames/s "
        f"(= {rate / FANOUT_SOCKETS:,.1f} events/s to all), p99 latency {p99 * 1000:.0f} ms"
    )
    rate, p50, p99 = fanout(settings, fan, user_id, 20, 0.5)
    lines.append(
        f"fan-out at 2 events/s to {FANOUT_SOCKETS} sockets: latency p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms"
    )
    for raw in idle[:FANOUT_SOCKETS]:
        raw.sock.close()
    return lines


def raise_fd_limit() -> None:
    import resource

    """Thousands of sockets need thousands of descriptors, here and in gunicorn (inherited)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
