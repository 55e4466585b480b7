"""``make bench``: every figure the issues ask for, on real servers, each beside its peer or floor.

The run, in order (each benchmark bounded by ``BOUNDS``; one that fails or
overruns is reported as such and the others still run):

1. one stack (fresh Redis + noida-db, a Celery worker, one gevent web
   process) over the demo mailbox: ``chat`` (first delta vs Elasticsearch),
   then ``reconnect_storm`` (which restarts the web); then ``ws_idle`` and
   ``ws_fanout`` (Mailchat and Flask-SocketIO, each its own web processes)
   and the mail sync figures on the same servers;
2. fresh servers: ``assistant`` (its own time per question, without the
   search's; ``bench/assistant.py``);
3. fresh servers: ``ingest`` (50,000 generated emails, import vs raw
   ``helpers.bulk``);
4. fresh servers: the own-mailbox figures (upload + import, search by size).

Prints ``name: value unit`` lines and writes ``bench-results.json``
(``bench.results.report``); ``python -m bench.table`` turns that file into the
README's table. Exits 0 when every benchmark ran, 1 when one failed.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from bench import assistant, chat, ingest, realtime, reconnect_storm, ws_fanout, ws_idle
from bench.mail_sync import bench_mail_sync
from bench.mailbox import BIG, bench_mailbox
from bench.results import Figure, report
from bench.stack import local_servers, post, web_and_worker
from devtools.demo_mailbox import write_mbox
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.settings import Settings
from shared.identity.users import create_user
from shared.index.writer import import_mbox

BENCH_EMAIL = "bench@example.com"
BENCH_PASSWORD = "bench-password"
# Seconds each benchmark may take on this loaded 2-core box before it is stopped.
BOUNDS = {
    "chat": 240,
    "reconnect_storm": 180,
    "ws_idle": 600,
    "ws_fanout": 600,
    "mail_sync": 300,
    "assistant": 300,
    "ingest": 420,
    "mailbox": 600,
}


def bench_settings(settings: Settings) -> Settings:
    """The benchmark is one person asking hundreds of questions over thousands of sockets:
    lift the per-person ask and socket limits (they protect production, not what is measured)."""
    return dataclasses.replace(
        settings, ask_rate_limit="1000000 per minute", ws_max_sockets_per_user=20000
    )


class Overran(Exception):
    """A benchmark ran past its bound."""


@contextmanager
def bounded(seconds: int) -> Iterator[None]:
    """Raise ``Overran`` in the main thread once ``seconds`` have passed (SIGALRM)."""

    def expire(_signum: int, _frame: FrameType | None) -> None:
        raise Overran(f"stopped after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


class Run:
    """The figures so far, and which benchmarks failed."""

    def __init__(self) -> None:
        self.figures: list[Figure] = []
        self.failed: list[str] = []
        self.started = time.perf_counter()

    def measure(self, name: str, benchmark: Callable[[], list[Figure]]) -> None:
        """Run one benchmark within its bound; a failure becomes a ``<name>.failed`` figure."""
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            with bounded(BOUNDS[name]):
                figures = benchmark()
        except Exception as exc:  # one broken benchmark must not hide the others' figures
            traceback.print_exc()
            self.failed.append(name)
            figures = [Figure(f"{name}.failed", None, "", detail={"error": repr(exc)[:500]})]
        elapsed = time.perf_counter() - started
        for figure in figures:
            print(f"  {figure.line()}", flush=True)
        print(f"  ({name} took {elapsed:.0f} s)", flush=True)
        self.figures += figures
        self.figures.append(Figure(f"{name}.seconds", round(elapsed, 1), "s"))


def stack_benchmarks(run: Run, settings: Settings, workdir: Path) -> None:
    """chat, the socket figures and the storm on one web process over the demo mailbox."""
    mbox = workdir / "demo.mbox"
    write_mbox(mbox, owner_address=BENCH_EMAIL, today=datetime.now(UTC).date())
    user = create_user(get_redis(settings), settings, BENCH_EMAIL, BENCH_PASSWORD)
    import_mbox(get_elasticsearch(settings), settings, user.id, mbox, refresh=True)
    with web_and_worker(settings, workdir) as (base, web, _worker):
        login = {"email": BENCH_EMAIL, "password": BENCH_PASSWORD}
        token = post(f"{base}/api/auth/login", login)["access_token"]
        run.measure("chat", lambda: chat.run(base, token))
        serving: list[subprocess.Popen[bytes]] = []

        def storm() -> list[Figure]:
            fresh = post(f"{base}/api/auth/login", login)["access_token"]
            figures, new_web = reconnect_storm.run(settings, workdir, web, user.id, fresh)
            serving.append(new_web)
            return figures

        try:
            run.measure("reconnect_storm", storm)
        finally:
            for process in serving:
                process.terminate()
                process.wait(30)


def main() -> int:
    load_before = os.getloadavg()[0]  # how busy the machine was before the run: in the table
    realtime.raise_fd_limit()
    run = Run()
    with local_servers("mailchat-bench:") as (settings, workdir):
        settings = bench_settings(settings)
        stack_benchmarks(run, settings, workdir)
        # Its own web processes (Mailchat's and the Flask-SocketIO peer's) on free ports.
        run.measure("ws_idle", lambda: ws_idle.run(settings, workdir))
        run.measure("ws_fanout", lambda: ws_fanout.run(settings, workdir))
        run.measure("mail_sync", lambda: bench_mail_sync(settings, workdir))
    # Fresh servers: the assistant's own time per question, without the search's.
    with local_servers("mailchat-bench-assistant:") as (settings, workdir):
        run.measure("assistant", lambda: assistant.run(settings, workdir))
    with tempfile.TemporaryDirectory(prefix="mailchat-bench-mbox-") as shared_dir:
        big = Path(shared_dir) / "takeout-50k.mbox"
        started = time.perf_counter()
        # 60 days: inside the retention, so every email is kept. Shared by ingest and mailbox.
        write_mbox(
            big, owner_address=BENCH_EMAIL, today=datetime.now(UTC).date(), count=BIG, days=60
        )
        print(f"generated {BIG:,} emails in {time.perf_counter() - started:.0f} s", flush=True)
        # Fresh servers each: the embedded engine's cost depends on every document it holds.
        with local_servers("mailchat-bench-ingest:") as (settings, _workdir):
            run.measure("ingest", lambda: ingest.run(settings, big, BIG))
        with local_servers("mailchat-bench-mailbox:") as (settings, workdir):
            run.measure("mailbox", lambda: bench_mailbox(settings, workdir, big))
    total = time.perf_counter() - run.started
    run.figures.append(Figure("bench.total_seconds", round(total, 1), "s", aim="< 900 s"))
    print()
    report(run.figures, load_before=load_before)
    if run.failed:
        print(f"failed: {', '.join(run.failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
