"""``ws_idle``: idle WebSockets one gevent web process holds, and its memory per socket.

Mailchat's ``/ws`` (authenticated, following each person's notification
stream, heartbeats on) beside Flask-SocketIO (every socket in a room, Redis
message queue on), each one gunicorn process with a gevent worker, in the
same run. KiB each is the worker's RSS growth divided by the sockets held,
measured after a warm-up (first connections import and allocate once), and
the sockets are held through one more pump so a socket closed meanwhile is
not counted as held. Bounded: at most ``OPEN_TIMEOUT`` to open, a few
seconds to hold, then everything closes.

``run(settings, workdir)`` is what ``make bench`` calls (issue 14, item 2).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from bench.results import Figure
from bench.ws_common import Server, Sockets, mailchat, peer, peer_version
from shared.core.settings import Settings

SOCKETS = 10_000
WARM_UP = 100
HOLD_SECONDS = 5.0
OPEN_TIMEOUT = 240.0


def measure(server: Server, sockets: int) -> dict[str, Any]:
    """Open ``sockets`` idle sockets on ``server``; held, KiB each, closes seen."""
    warm = Sockets(server)
    warm.open(WARM_UP, timeout=60)
    warm.close_all()
    time.sleep(1.0)
    before = server.rss()
    held = Sockets(server)
    started = time.monotonic()
    ready = held.open(sockets, timeout=OPEN_TIMEOUT)
    open_seconds = time.monotonic() - started
    held.pump(HOLD_SECONDS)  # idle: answer pings, notice any close
    after = server.rss()
    result = {
        "sockets": sockets,
        "ready": ready,
        "held": held.open_count,
        "open_seconds": round(open_seconds, 1),
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "kib_each": round((after - before) / max(1, held.open_count) / 1024, 1),
        "closes": dict(held.closes),
        "advice": dict(held.advice),
    }
    held.close_all()
    return result


def run(settings: Settings, workdir: Path, sockets: int = SOCKETS) -> list[Figure]:
    """Mailchat vs Flask-SocketIO, the same gunicorn/gevent setup, in this run."""
    results: dict[str, dict[str, Any]] = {}
    starters: list[tuple[str, Callable[..., AbstractContextManager[Server]]]] = [
        ("mailchat", mailchat),
        ("peer", peer),
    ]
    for name, start in starters:
        with start(settings, workdir, sockets) as server:
            results[name] = measure(server, sockets)
        print(f"  ws_idle {name}: {results[name]}", file=sys.stderr)
    ours, theirs = results["mailchat"], results["peer"]
    return [
        Figure(
            "ws_idle.sockets_held",
            ours["held"],
            "sockets",
            peer=theirs["held"],
            peer_name=peer_version(),
            aim=f">= {sockets} in one web process",
            detail={"mailchat": ours, "peer": theirs},
        ),
        Figure(
            "ws_idle.kib_per_socket",
            ours["kib_each"],
            "KiB",
            peer=theirs["kib_each"],
            peer_name=peer_version(),
            aim="<= 40 KiB",
        ),
        Figure(
            "ws_idle.closes_1011",
            ours["closes"].get(1011, 0),
            "sockets",
            peer=theirs["closes"].get(1011, 0),
            peer_name=peer_version(),
            aim="0",
        ),
    ]


if __name__ == "__main__":
    from bench.results import report
    from bench.stack import local_servers

    count = int(sys.argv[1]) if len(sys.argv) > 1 else SOCKETS
    with local_servers("mailchat-bench-ws-idle:") as (bench_settings, bench_workdir):
        report(run(bench_settings, bench_workdir, count), "bench-ws-idle.json")
