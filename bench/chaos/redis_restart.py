"""Scenario b: Redis killed (SIGKILL) and restarted mid-traffic, AOF on: nothing acknowledged lost.

The scenario's own Redis runs with ``appendonly yes`` and ``appendfsync always``:
Redis then fsyncs the AOF before it replies, so whatever a client was told
"done" (the outbox entry, the queued task, the appended event, the stream's
epoch) is on disk when the process dies, even by SIGKILL, even on a host crash.
``everysec`` (Redis's default, and ``make run``'s) may lose the last second of
acknowledged writes on a host crash, and with SIGKILL a write postponed behind a
slow fsync; the price of ``always`` is one fsync per event-loop turn, which the
workload here (a few hundred writes a second) does not notice.

Traffic: deliveries enqueued to a person's conversations, followed over
WebSocket and SSE through one web instance, one Celery worker delivering.
While Redis is down, enqueueing fails (indeterminate, not acked), sockets get
``advice`` + 1013 and SSE streams an ``error``; the clients come back and
resume from their last event id with the stream's epoch, which must still be
the same (a reset would mean Redis forgot the epoch).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

from bench.chaos.harness import (
    Backlog,
    Result,
    SupervisedWorker,
    Sweeper,
    chaos_settings,
    child_env,
    judge,
    together,
)
from bench.chaos.history import History
from bench.chaos.traffic import (
    Producer,
    make_person,
    start_followers,
    stop_all,
    wait_all_received,
)
from devtools.servers import LocalServer, start_redis
from shared.core.settings import Settings
from tests.live import start_web

NAME = "redis_restart"
FSYNC = "always"


@dataclass(frozen=True)
class Params:
    deliveries: int = 1000
    rate: float = 40.0
    restarts: int = 2
    down_seconds: float = 2.0
    conversations: int = 4
    websockets: int = 2
    settle_timeout: float = 90.0
    appendonly: bool = True  # False only to show the checker catching the loss


SMALL = Params(
    deliveries=90,
    rate=30.0,
    restarts=1,
    down_seconds=1.0,
    conversations=2,
    websockets=1,
    settle_timeout=45.0,
)


def run(settings: Settings, workdir: Path, params: Params = Params()) -> Result:
    data = workdir / "chaos-redis"
    server: LocalServer = start_redis(data, appendonly=params.appendonly, appendfsync=FSYNC)
    settings = chaos_settings(dataclasses.replace(settings, redis_url=server.url))
    env = child_env(settings)
    path = workdir / f"{NAME}.jsonl"
    history = History(path)
    web = None
    worker: SupervisedWorker | None = None
    followers = []
    sweeper = Sweeper(settings)
    backlog = Backlog(settings)
    try:
        web, worker = together(
            lambda: start_web(workdir, env),
            lambda: SupervisedWorker(settings, workdir / "redis-worker.log", env),
        )
        person = make_person(settings, params.conversations)
        followers = start_followers(
            web.base, person, history, websockets=params.websockets, sse=True
        )
        producer = Producer(settings, person, history, params.deliveries, params.rate)
        sweeper.start()
        backlog.start()
        producer.start()
        run_seconds = params.deliveries / params.rate
        restarts = 0
        mid_traffic = True
        for number in range(params.restarts):
            # Evenly inside the traffic, never after it.
            time.sleep(run_seconds / (params.restarts + 1) - (params.down_seconds if number else 0))
            mid_traffic = mid_traffic and producer.is_alive()
            server.kill()
            history.fault(
                "kill", "redis", signal="SIGKILL", appendonly=params.appendonly, fsync=FSYNC
            )
            time.sleep(params.down_seconds)
            server = start_redis(data, server.port, appendonly=params.appendonly, appendfsync=FSYNC)
            history.fault("restart", "redis")
            restarts += 1
        producer.join(run_seconds * 3 + 60)
        settled = wait_all_received(producer, followers, settings, params.settle_timeout)
        stop_all(followers)
        figures = {
            "deliveries": params.deliveries,
            "acked": sum(len(m) for m in producer.acked.values()),
            "refused while down": producer.refused,
            "redis restarts": restarts,
            "appendfsync": FSYNC if params.appendonly else "(AOF off)",
            "client reconnects": sum(f.connects - 1 for f in followers),
            "resets": sum(f.resets for f in followers),
            "worker exits (restarted)": worker.exits,
            "all received after s": round(settled, 1),
            **backlog.figures(),
        }
        problems = []
        if not mid_traffic:
            problems.append("Redis was killed after the traffic ended")
        if not any(f.connects > 1 for f in followers):
            problems.append("no client was cut off: Redis was not down while they followed")
    finally:
        sweeper.stop.set()
        backlog.stop.set()
        stop_all(followers)
        if worker is not None:
            worker.shutdown()
        if web is not None:
            web.stop()
        server.stop()
        history.close()
    return judge(NAME, path, figures, problems)
