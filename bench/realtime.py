"""Socket helpers for the benchmarks, and the fan-out figures until ``bench.ws_fanout`` lands.

- Fan-out: events per second and p99 latency to 1,000 connected sockets.

(The time to the first ``delta`` moved to ``bench.chat``, idle sockets to ``bench.ws_idle``.)

The socket benchmarks use a minimal selector-driven WebSocket client below,
because a thread per client (as a normal client library would use) would
measure the benchmark, not the server.
"""

from __future__ import annotations

import json
import secrets
import selectors
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.results import Figure
from bench.wsclient import Closed, RawSocket
from shared.core.clients import get_redis
from shared.core.settings import Settings
from shared.realtime.eventlog import EventLog

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
                try:
                    for frame in key.data.frames():
                        if frame.get("type") == "ping":  # the heartbeat: answer or be closed
                            key.data.send_text('{"type":"pong"}')
                        if on_frame(key.data, frame):
                            matched += 1
                except Closed as closed:  # the server closed it: say so, not a stuck wait
                    raise RuntimeError(f"the server closed a socket with {closed.code}") from None
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
    failures: list[BaseException] = []

    def read() -> None:
        try:
            counted.append(pump(sockets, on_frame, expected=expected, timeout=120))
        except BaseException as exc:  # handed to the caller: a thread's exception is lost
            failures.append(exc)

    reader = threading.Thread(target=read)
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
    if failures:
        raise RuntimeError(f"fan-out stopped: {failures[0]}")
    if counted[0] != expected:
        raise RuntimeError(f"fan-out delivered {counted[0]} of {expected} frames")
    return expected / elapsed, percentile(latencies, 0.5), percentile(latencies, 0.99)


def run(settings: Settings, port: int, token: str, user_id: str) -> list[Figure]:
    """Fan-out to 1,000 sockets on the running web process, as figures."""
    fan = open_sockets(port, f"http://{settings.web_host}:{port}", token, FANOUT_SOCKETS)
    try:
        burst = {"sockets": FANOUT_SOCKETS, "events": FANOUT_EVENTS}
        rate, _, p99 = fanout(settings, fan, user_id, FANOUT_EVENTS, 0.0)
        figures = [
            Figure(
                "realtime.fanout_burst_frames_per_second", round(rate), "frames/s", detail=burst
            ),
            Figure("realtime.fanout_burst_p99", round(p99 * 1000, 1), "ms", detail=burst),
        ]
        _, p50, p99 = fanout(settings, fan, user_id, 20, 0.5)
        steady = {"sockets": FANOUT_SOCKETS, "events_per_second": 2}
        figures.append(
            Figure("realtime.fanout_steady_p50", round(p50 * 1000, 1), "ms", detail=steady)
        )
        figures.append(
            Figure("realtime.fanout_steady_p99", round(p99 * 1000, 1), "ms", detail=steady)
        )
        return figures
    finally:
        for raw in fan:
            raw.sock.close()


def raise_fd_limit() -> None:
    """Thousands of sockets need thousands of descriptors, here and in gunicorn (inherited)."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
