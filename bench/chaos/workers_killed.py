"""Scenario a: kill -9 Celery workers every few seconds during 1,000 deliveries.

Two workers consume the ``delivery`` queue (and the rest); every
``kill_every`` seconds one of them, in turn, is killed with SIGKILL to its
whole process group (main process and pool, mid-task) and started again. The
producer enqueues deliveries with ``enqueue_delivery`` (outbox first, then
the task) to a person's conversations, which WebSocket and SSE clients
follow through one web instance. What a killed worker held comes back by the
broker's visibility timeout; what it had popped but not yet recorded comes
back by the outbox sweep; the dedup key makes a second run write nothing.
Judged: each acknowledged delivery received exactly once by every follower,
in stream order.
"""

from __future__ import annotations

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
from shared.core.settings import Settings
from tests.live import start_web

NAME = "workers_killed"


@dataclass(frozen=True)
class Params:
    deliveries: int = 1000
    rate: float = 40.0  # deliveries a second: 1,000 take 25 s, about 8 kills
    kill_every: float = 3.0
    conversations: int = 4
    websockets: int = 2
    settle_timeout: float = 90.0


SMALL = Params(
    deliveries=120, rate=30.0, kill_every=1.5, conversations=2, websockets=1, settle_timeout=45.0
)


def run(settings: Settings, workdir: Path, params: Params = Params()) -> Result:
    settings = chaos_settings(settings)
    env = child_env(settings)
    path = workdir / f"{NAME}.jsonl"
    history = History(path)
    web = None
    workers: list[SupervisedWorker] = []
    followers = []
    sweeper = Sweeper(settings)
    backlog = Backlog(settings)
    kills = 0
    try:
        web, *workers = together(
            lambda: start_web(workdir, env),
            *(
                lambda n=n: SupervisedWorker(settings, workdir / f"worker-{n}.log", env)
                for n in range(2)
            ),
        )
        person = make_person(settings, params.conversations)
        followers = start_followers(
            web.base, person, history, websockets=params.websockets, sse=True
        )
        producer = Producer(settings, person, history, params.deliveries, params.rate)
        sweeper.start()
        backlog.start()
        started = time.monotonic()
        producer.start()
        while producer.is_alive():
            producer.join(params.kill_every)
            if not producer.is_alive():
                break
            slot = kills % len(workers)
            pid = workers[slot].kill()  # the main process and its pool, mid-task
            history.fault("kill", f"worker-{slot}", signal="SIGKILL", pid=pid)
            kills += 1
        produced = time.monotonic() - started
        settled = wait_all_received(producer, followers, settings, params.settle_timeout)
        stop_all(followers)
        figures = {
            "deliveries": params.deliveries,
            "acked": sum(len(m) for m in producer.acked.values()),
            "workers killed": kills,
            "worker exits (restarted)": sum(w.exits for w in workers),
            "followers": len(followers),
            "produced in s": round(produced, 1),
            "all received after s": round(settled, 1),
            **backlog.figures(),
        }
        problems = [] if kills else ["no worker was killed while delivering"]
    finally:
        sweeper.stop.set()
        backlog.stop.set()
        stop_all(followers)
        for worker in workers:
            worker.shutdown()
        if web is not None:
            web.stop()
        history.close()
    return judge(NAME, path, figures, problems)
