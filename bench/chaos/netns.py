"""Chaos on several hosts: a web host's network cut for 20 s, nothing lost or doubled.

Run with ``python -m bench.chaos.netns [--cut SECONDS]`` (root: it makes network
namespaces). The topology (``bench.chaos.topology``), made and removed by the run::

    root namespace (clients)  -- bridge mc-<id>-br --+-- data: redis-server, noida-db, beat
      followers know web1 and web2                   +-- web1: gunicorn (gevent) + Celery worker
      producer: enqueue_delivery                     +-- web2: gunicorn (gevent) + Celery worker

Deliveries flow into conversations in bursts; every conversation has one
follower homed on each web host, following over WebSocket and recording into
the History. Mid-traffic, in the middle of a burst (so each worker holds tasks it
has not acknowledged), web1's cable is pulled. Its followers notice the
missing pong, reconnect to web2 and resume with their last event id; the
tasks web1's worker held come back to the queue when their visibility
timeout (shortened for the run, see ``RUN_SETTINGS``) expires and web2's
worker runs them; deliveries whose task vanished with the cut (popped from
the queue, never recorded as unacknowledged) are re-sent by beat's outbox
sweep. The link comes back, traffic goes on, and the checker reads the
History: nothing acknowledged lost, nothing doubled, nothing out of order.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import redis

from bench.chaos.failover import Follower, Producer
from bench.chaos.history import History, Verdict, check, read
from bench.chaos.hosts import ORIGIN, WEB_PORT, stack
from bench.chaos.topology import Topology
from bench.results import Figure, report
from celery_app import create_celery
from shared.core.settings import Settings
from shared.core.task_names import DELIVERY_DELIVER
from shared.identity.users import create_user, issue_token
from shared.realtime.conversations import claim_conversation
from shared.realtime.eventlog import EventLog

UNACKED, UNACKED_INDEX = "unacked", "unacked_index"  # kombu's Redis transport, default keys


@dataclass(frozen=True)
class Plan:
    """How long each phase lasts; the defaults are the issue's (a 20 s cut), under 3 minutes."""

    cut_seconds: float = 20.0
    before_seconds: float = 8.0  # traffic before the cut
    after_seconds: float = 8.0  # traffic after the link is back
    conversations: int = 6
    burst: int = 30  # deliveries per second, in one burst
    drain_seconds: float = 40.0  # at most this long for every acked event to arrive
    # A task held unacknowledged this long by a worker is handed to another (production:
    # an hour, since sync tasks run that long; no sync runs here). Below the cut, so the
    # cut shows redelivery while web1 is still away.
    visibility_timeout_seconds: int = 8
    control: bool = True  # one more follower that resumes wrongly, in its own history


@dataclass
class CutLog:
    """What the run saw around the cut (monotonic times, wall time for kombu's scores)."""

    at: float = 0.0
    at_wall: float = 0.0
    restored_at: float = 0.0
    restored_at_wall: float = 0.0
    held: frozenset[str] = frozenset()  # delivery tags web1's worker held unacknowledged
    held_messages: frozenset[str] = frozenset()  # the History's names of their deliveries
    redelivered: frozenset[str] = frozenset()  # of those, handed back before the link returned
    error: str = ""  # what went wrong watching the cut (the link was restored regardless)


def _people(settings: Settings, r: redis.Redis, count: int) -> list[tuple[str, str, str, str]]:
    """``count`` users, one conversation each: (token, conversation id, stream, epoch)."""
    events = EventLog(r, settings)
    people = []
    for number in range(count):
        user = create_user(
            r, settings, f"netns-{number}-{secrets.token_hex(3)}@example.com", secrets.token_hex(12)
        )
        conversation_id = claim_conversation(r, settings, user.id, None)
        stream = events.conversation_stream(conversation_id)
        people.append((issue_token(settings, user), conversation_id, stream, events.epoch(stream)))
    return people


def _deliveries_unacked(r: redis.Redis) -> set[str]:
    """The tags of the delivery tasks some worker holds unacknowledged right now."""
    return {str(tag) for tag, raw in r.hgetall(UNACKED).items() if _message_of(raw)}


def _pause_until_web1_holds(
    r: redis.Redis, web1_worker: int, mid_burst: threading.Event, attempts: int = 4
) -> None:
    """Freeze web1's worker while it holds a delivery, so the cut finds one in its hands.

    Its tasks take milliseconds, so the instant a cut lands decides whether it holds
    any: a test that must see a held task redelivered cannot leave that to chance.
    Mid-burst, the worker's consumer (the process that fetches and acknowledges) is
    stopped; a delivery still unacknowledged 0.2 s later, and still 0.2 s after that,
    is web1's (web2's worker settles its own in milliseconds). Not yet: let it go on
    and try at the next burst. The caller cuts the link and then lets it continue:
    to the worker, the link died in the middle of its tasks.
    """
    for _ in range(attempts):
        mid_burst.wait(2.0)
        mid_burst.clear()
        os.kill(web1_worker, signal.SIGSTOP)
        time.sleep(0.2)
        seen = _deliveries_unacked(r)
        time.sleep(0.2)
        if seen & _deliveries_unacked(r):
            return  # still stopped: the caller cuts, then continues it
        os.kill(web1_worker, signal.SIGCONT)


def _watch_cut(
    r: redis.Redis,
    net: Topology,
    cut: CutLog,
    plan: Plan,
    history: History,
    web1_worker: int,
    mid_burst: threading.Event,
) -> None:
    """Cut web1, note the tasks its worker holds, see them handed back, restore the link."""
    try:
        _pause_until_web1_holds(r, web1_worker, mid_burst)
        net.cut("web1")
    finally:
        os.kill(web1_worker, signal.SIGCONT)
    cut.at, cut.at_wall = time.monotonic(), time.time()
    history.fault("cut", "web1", seconds=plan.cut_seconds)
    try:
        # web2's worker acknowledges its own tasks in milliseconds, web1's stay (until the
        # visibility timeout, which must be longer than this look).
        time.sleep(1.0)
        held = {str(tag) for tag in r.zrangebyscore(UNACKED_INDEX, 0, cut.at_wall)}
        cut.held = frozenset(held & {str(tag) for tag in r.hkeys(UNACKED)})
        entries = r.hmget(UNACKED, sorted(cut.held)) if cut.held else []
        messages = {_message_of(raw) for raw in entries}
        cut.held_messages = frozenset(messages - {""})  # beat's sweeps carry no delivery
        time.sleep(max(0.0, cut.at + plan.cut_seconds - time.monotonic() - 0.2))
        scored = cast(list[tuple[str, float]], r.zrange(UNACKED_INDEX, 0, -1, withscores=True))
        still = {str(tag): float(score) for tag, score in scored}
        cut.redelivered = frozenset(
            tag for tag in cut.held if still.get(tag, cut.at_wall + 1) > cut.at_wall
        )
    except Exception as exc:  # noqa: BLE001 - reported in the outcome; the link comes back anyway
        cut.error = f"{type(exc).__name__}: {exc}"
        time.sleep(max(0.0, cut.at + plan.cut_seconds - time.monotonic()))
    finally:
        net.restore("web1")
        cut.restored_at, cut.restored_at_wall = time.monotonic(), time.time()
        history.fault("restore", "web1")


def _message_of(unacked: bytes | str | None) -> str:
    """The History name of the delivery in a kombu ``unacked`` entry (Celery protocol 2)."""
    if unacked is None:
        return ""
    payload = json.loads(unacked)[0]
    if payload.get("headers", {}).get("task") != DELIVERY_DELIVER:
        return ""
    _, kwargs, _ = json.loads(base64.b64decode(payload["body"]))
    return str(kwargs.get("data", {}).get("message", ""))


def received_before(history: list[dict[str, Any]], messages: frozenset[str], t: float) -> int:
    """How many of ``messages`` some follower received before wall time ``t``."""
    early = {r["message"] for r in history if r["op"] == "received" and r["t"] < t}
    return len(messages & early)


def traffic(
    settings: Settings, net: Topology, workdir: Path, plan: Plan, web1_worker: int
) -> dict[str, Any]:
    """Followers, producer, the cut and the drain; returns what the figures are made of."""
    r = redis.Redis.from_url(settings.redis_url, decode_responses=True, socket_timeout=10)
    webs = [(net["web1"].address, WEB_PORT), (net["web2"].address, WEB_PORT)]
    stop = threading.Event()
    history = History(workdir / "history.jsonl")
    followers = []
    for number, (token, conversation_id, stream, epoch) in enumerate(
        _people(settings, r, plan.conversations)
    ):
        for home in (0, 1):
            name = f"c{number}-home-web{home + 1}"
            followers.append(
                Follower(
                    name, webs, home, ORIGIN, token, conversation_id, stream, epoch, history, stop
                )
            )
    control_history = History(workdir / "control.jsonl")
    everyone = list(followers)
    if plan.control:
        first = followers[0]
        control = Follower(
            "control-resumes-from-start",
            webs,
            0,
            ORIGIN,
            first.token,
            first.conversation_id,
            first.stream,
            first.epoch,
            control_history,
            stop,
            forgets_position=True,
        )
        everyone.append(control)
    threads = [follower.start() for follower in everyone]
    deadline = time.monotonic() + 30
    while not all(f.connections for f in everyone) and time.monotonic() < deadline:
        time.sleep(0.1)
    celery = create_celery(settings, with_tasks=False)
    producer = Producer(
        celery.send_task,
        r,
        settings,
        [(f.conversation_id, f.stream) for f in followers[::2]],
        history,
        plan.burst,
    )
    cut = CutLog()
    cut_after = int(plan.before_seconds)
    mid_burst = threading.Event()
    watcher = threading.Thread(
        target=_watch_cut,
        args=(r, net, cut, plan, history, web1_worker, mid_burst),
        daemon=True,
    )

    def hook(number: int, offset: int) -> None:
        # During a burst the queue has a backlog, so each worker holds a task per process.
        if (number, offset) == (cut_after, 0):
            watcher.start()
        if number >= cut_after and offset == plan.burst // 2:
            mid_burst.set()

    producer.run(plan.before_seconds + plan.cut_seconds + plan.after_seconds + 1, stop, hook)
    watcher.join(plan.cut_seconds + 10)
    produced_at = time.monotonic()
    drain_deadline = produced_at + plan.drain_seconds
    while time.monotonic() < drain_deadline and not _all_arrived(followers, producer):
        time.sleep(0.2)
    drained_at = time.monotonic()
    stop.set()
    for thread in threads:
        thread.join(10)
    history.close()
    control_history.close()
    records = read(history.path)
    return {
        "verdict": check(records),
        "held_arrived_during_cut": received_before(
            records, cut.held_messages, cut.restored_at_wall
        ),
        # The control's history gets the producer's records too, so it is judged like the rest.
        "control": check(read(history.path, control_history.path)) if plan.control else None,
        "followers": followers,
        "producer": producer,
        "cut": cut,
        "drain_seconds": drained_at - produced_at,
        "drained": _all_arrived(followers, producer),
    }


def _all_arrived(followers: list[Follower], producer: Producer) -> bool:
    return all(producer.acked.get(f.stream, set()) <= set(f.received) for f in followers)


def figures(outcome: dict[str, Any], plan: Plan, run_seconds: float) -> list[Figure]:
    verdict: Verdict = outcome["verdict"]
    cut: CutLog = outcome["cut"]
    followers: list[Follower] = outcome["followers"]
    cut_off = [f for f in followers if f.home == 0]
    failovers = []
    for follower in cut_off:
        moved = [c for c in follower.connections if c.web == 1 and c.ready_at > cut.at]
        if moved:
            failovers.append(moved[0].ready_at - cut.at)
    zero = "0"
    return [
        Figure(
            "netns.deliveries_acked",
            verdict.acked,
            "deliveries",
            detail={"received": verdict.received, "indeterminate": verdict.indeterminate},
        ),
        Figure(
            "netns.lost", len(verdict.lost), "events", aim=zero, detail={"first": verdict.lost[:5]}
        ),
        Figure(
            "netns.doubled",
            len(verdict.doubled),
            "events",
            aim=zero,
            detail={"first": verdict.doubled[:5]},
        ),
        Figure("netns.out_of_order", len(verdict.out_of_order), "events", aim=zero),
        Figure("netns.phantom", len(verdict.phantom), "events", aim=zero),
        Figure("netns.clients_failed_over", len(failovers), "clients", aim=f"all {len(cut_off)}"),
        Figure("netns.failover_p50", statistics.median(failovers) if failovers else None, "s"),
        Figure("netns.failover_max", max(failovers) if failovers else None, "s"),
        Figure("netns.web1_tasks_held_at_cut", len(cut.held), "tasks"),
        Figure(
            "netns.web1_tasks_redelivered_during_cut",
            len(cut.redelivered),
            "tasks",
            aim=f"all {len(cut.held)}",
        ),
        Figure(
            "netns.web1_tasks_delivered_during_cut",
            outcome["held_arrived_during_cut"],
            "tasks",
            aim=f"all {len(cut.held)}, before web1 is back",
        ),
        Figure(
            "netns.control_doubled",
            len(outcome["control"].doubled) if outcome["control"] else None,
            "events",
            aim="> 0: a client resuming from the start is caught",
        ),
        Figure("netns.drain_after_traffic", outcome["drain_seconds"], "s"),
        Figure("netns.cut", plan.cut_seconds, "s"),
        Figure("netns.run", run_seconds, "s", aim="< 180"),
    ]


def run(plan: Plan, workdir: Path | None = None) -> tuple[list[Figure], dict[str, Any]]:
    """The whole scenario on a fresh topology, removed afterwards whatever happens."""
    started = time.monotonic()
    with contextlib.ExitStack() as cleanup:
        if workdir is None:
            workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="mc-netns-")))
        net = cleanup.enter_context(Topology(["data", "web1", "web2"]))
        running = cleanup.enter_context(stack(net, workdir, plan.visibility_timeout_seconds))
        outcome = traffic(running.settings, net, workdir, plan, running.workers["web1"])
        outcome["run_id"] = net.run_id
    return figures(outcome, plan, time.monotonic() - started), outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cut", type=float, default=Plan.cut_seconds, help="seconds web1 is cut off"
    )
    parser.add_argument("--workdir", type=Path, help="keep logs and the history here")
    # Its own file: `make chaos` runs it after the loopback scenarios (chaos-results.json),
    # and `make bench`'s bench-results.json (the README table) must not be overwritten.
    parser.add_argument("--json", default="chaos-netns-results.json", help="where the figures go")
    args = parser.parse_args(argv)
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the hosts and their processes go.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    found, outcome = run(Plan(cut_seconds=args.cut), args.workdir)
    report(found, args.json)
    verdict: Verdict = outcome["verdict"]
    print(verdict.summary())
    if outcome["cut"].error:
        print(f"watching the cut failed: {outcome['cut'].error}")
    print(json.dumps({"drained": outcome["drained"]}))
    control: Verdict | None = outcome["control"]
    caught = control is None or bool(control.doubled)
    return 0 if verdict.ok and outcome["drained"] and caught else 1


if __name__ == "__main__":
    raise SystemExit(main())
