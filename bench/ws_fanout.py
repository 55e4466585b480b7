"""``ws_fanout``: one conversation delivered to 1,000 sockets, at rising offered rates.

A rate is *deliveries* offered per second: 2,000/s is 2 events a second,
each to all 1,000 sockets (20,000/s: 20 events a second). Each step offers
its rate for ``DURATION`` seconds, then waits at most ``DRAIN`` seconds for
the stragglers, and measures:

- delivered/s: frames received over the time from the first append to the
  last receipt (equal to the offered rate when the server keeps up);
- p99 latency from the append (or the peer's emit) to the receipt;
- exactly-once: every socket got every event of the step once, in order
  (lost, doubled and out-of-order sockets are counted; a 1011 fails it).

Mailchat's events are appended to the conversation's log as a Celery
delivery task would (``EventLog.append``); the peer's are emitted through
Flask-SocketIO's Redis message queue from this process (``SocketIO(
message_queue=...).emit(..., to=room)``), the way the peer documents emitting
from a worker. Same client, same machine, same run.

``run(settings, workdir)`` is what ``make bench`` calls (issue 14, item 2).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.results import Figure
from bench.ws_common import Server, Sockets, mailchat, peer, peer_version, percentile
from shared.core.clients import get_redis
from shared.core.settings import Settings
from shared.realtime.conversations import claim_conversation
from shared.realtime.eventlog import EventLog

SOCKETS = 1000
RATES = (2_000, 5_000, 10_000, 20_000)  # deliveries per second offered
DURATION = 5.0
DRAIN = 10.0
P99_AIM_SECONDS = 0.1

Emit = Callable[[dict[str, Any]], None]


def mailchat_emitter(settings: Settings, server: Server, sockets: Sockets) -> Emit:
    """Follow one conversation on every socket; the emitter appends to its log."""
    r = get_redis(settings)
    events = EventLog(r, settings)
    conversation_id = claim_conversation(r, settings, server.user_ids[0], None)
    stream = events.conversation_stream(conversation_id)
    sockets.send_all(f'{{"type":"resume","conversation_id":"{conversation_id}","after":"0"}}')

    def emit(data: dict[str, Any]) -> None:
        events.append(
            stream,
            "bench",
            data,
            dedup_key=f"bench:{data['step']}:{data['n']}",
            conversation_id=conversation_id,
        )

    return emit


def peer_emitter(settings: Settings, server: Server, sockets: Sockets) -> Emit:
    """Emit to the peer's room through its Redis message queue (write-only, as a worker would)."""
    from flask_socketio import SocketIO

    from bench.peers.socketio_app import ROOM

    emitter = SocketIO(message_queue=settings.redis_url, channel=server.tokens[0])

    def emit(data: dict[str, Any]) -> None:
        emitter.emit("bench", data, to=ROOM)

    return emit


def step(sockets: Sockets, emit: Emit, number: int, rate: int) -> dict[str, Any]:
    """Offer ``rate`` deliveries/s for DURATION s; what arrived, how fast, how late, how often."""
    count = len(sockets.ready)
    per_second = rate / count
    events = max(1, round(per_second * DURATION))
    received: dict[int, list[int]] = {index: [] for index in sockets.ready}
    latencies: list[float] = []
    last_receipt = [0.0]

    def on_event(index: int, data: dict[str, Any]) -> None:
        if data.get("step") != number:
            return
        now = time.time()
        received.setdefault(index, []).append(int(data["n"]))
        latencies.append(now - float(data["sent_at"]))
        last_receipt[0] = now

    sockets.on_event = on_event
    first_sent = time.time()

    def offer() -> None:
        for n in range(events):
            due = first_sent + n / per_second
            time.sleep(max(0.0, due - time.time()))
            emit({"step": number, "n": n, "sent_at": time.time()})

    emitter = threading.Thread(target=offer, name="offer", daemon=True)
    emitter.start()
    expected = count * events
    sockets.pump_until(lambda: len(latencies) >= expected, DURATION + DRAIN)
    emitter.join(DRAIN)
    wanted = list(range(events))
    lost = sum(len(set(wanted) - set(got)) for got in received.values())
    doubled = sum(len(got) - len(set(got)) for got in received.values())
    out_of_order = sum(1 for got in received.values() if got != sorted(got))
    exact = sum(1 for got in received.values() if got == wanted)
    span = max(1e-9, (last_receipt[0] or time.time()) - first_sent)
    return {
        "offered_per_s": rate,
        "events": events,
        "sockets": count,
        "delivered": len(latencies),
        "delivered_per_s": round(len(latencies) / max(span, DURATION * (events - 1) / events), 1),
        "p50_ms": round(percentile(latencies, 0.5) * 1000, 1),
        "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
        "lost": lost,
        "doubled": doubled,
        "out_of_order_sockets": out_of_order,
        "exactly_once_sockets": exact,
    }


def measure(
    settings: Settings, server: Server, make_emitter: Callable[..., Emit], sockets_count: int
) -> dict[str, Any]:
    sockets = Sockets(server)
    ready = sockets.open(sockets_count, timeout=120)
    emit = make_emitter(settings, server, sockets)
    warm = step(sockets, emit, -1, min(RATES))  # every socket follows before the first step
    steps = [step(sockets, emit, number, rate) for number, rate in enumerate(RATES)]
    sockets.pump(0.5)
    closes, advice = dict(sockets.closes), dict(sockets.advice)
    sockets.close_all()
    return {"ready": ready, "warm_up": warm, "steps": steps, "closes": closes, "advice": advice}


def _best_rate(result: dict[str, Any]) -> int:
    """The highest offered rate met exactly once at p99 <= 100 ms (0 if none)."""
    good = [
        s["offered_per_s"]
        for s in result["steps"]
        if s["p99_ms"] <= P99_AIM_SECONDS * 1000 and s["lost"] == 0 and s["doubled"] == 0
    ]
    return max(good, default=0)


def run(settings: Settings, workdir: Path, sockets: int = SOCKETS) -> list[Figure]:
    """Mailchat vs Flask-SocketIO with its Redis queue, the same client, in this run."""
    with mailchat(settings, workdir, sockets, users=1) as server:
        ours = measure(settings, server, mailchat_emitter, sockets)
    print(f"  ws_fanout mailchat: {ours}", file=sys.stderr)
    with peer(settings, workdir, sockets) as server:
        theirs = measure(settings, server, peer_emitter, sockets)
    print(f"  ws_fanout peer: {theirs}", file=sys.stderr)
    name = peer_version()
    figures = []
    for mine, other in zip(ours["steps"], theirs["steps"], strict=True):
        prefix = f"ws_fanout.{mine['offered_per_s'] // 1000}k"
        figures += [
            Figure(
                f"{prefix}.delivered", mine["delivered_per_s"], "/s", other["delivered_per_s"], name
            ),
            Figure(f"{prefix}.p99", mine["p99_ms"], "ms", other["p99_ms"], name, "<= 100 ms"),
            Figure(
                f"{prefix}.lost_or_doubled",
                mine["lost"] + mine["doubled"],
                "events",
                other["lost"] + other["doubled"],
                name,
                "0",
                detail={"mailchat": mine, "peer": other},
            ),
        ]
    figures += [
        Figure(
            "ws_fanout.best_rate_at_p99_100ms",
            _best_rate(ours),
            "/s",
            _best_rate(theirs),
            name,
            ">= 2x the peer's",
            detail={"rates": list(RATES), "sockets": sockets, "duration_s": DURATION},
        ),
        Figure(
            "ws_fanout.closes_1011",
            ours["closes"].get(1011, 0),
            "sockets",
            theirs["closes"].get(1011, 0),
            name,
            "0",
        ),
    ]
    return figures


if __name__ == "__main__":
    from bench.results import report
    from bench.stack import local_servers

    count = int(sys.argv[1]) if len(sys.argv) > 1 else SOCKETS
    with local_servers("mailchat-bench-ws-fanout:") as (bench_settings, bench_workdir):
        report(run(bench_settings, bench_workdir, count), "bench-ws-fanout.json")
