"""``make bench``: the figures the issues ask for, measured on real servers.

- Import throughput of the demo mbox (emails/s), parse + bulk index.
- Chat round trip over HTTP (gunicorn → Redis → Celery worker → Elasticsearch
  → back), p50/p95 over 100 questions.

Everything runs on fresh local servers in a temporary directory (or on the
configured URLs), so results do not depend on a running ``make run``.
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import realtime
from bench.mail_sync import bench_mail_sync
from bench.mailbox import bench_mailbox
from bench.stack import local_servers, post, web_and_worker
from devtools.demo_mailbox import write_mbox
from shared.assistant.answer import parse_question
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.settings import Settings
from shared.identity.users import create_user
from shared.index.search import search_emails
from shared.index.writer import import_mbox

QUESTIONS = [
    "interviews in the last 30 days",
    "which recruiters wrote to me",
    "offer letter",
    "receipts in the past 2 weeks",
    "application received",
    "newsletter digest",
    "moving help",
    "rejection update on your application",
    "photos",
    "technical interview",
]
CHAT_ROUNDS = 100
IMPORT_RUNS = 3
BENCH_EMAIL = "bench@example.com"
BENCH_PASSWORD = "bench-password"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def bench_import(settings: Settings, mbox: Path) -> tuple[float, str]:
    """Import the demo mbox several times for one user (re-imports overwrite, so the
    index keeps one mailbox, as in the demo) and return the median rate."""
    es = get_elasticsearch(settings)
    rates = []
    user = create_user(get_redis(settings), settings, BENCH_EMAIL, BENCH_PASSWORD)
    for run in range(IMPORT_RUNS):
        started = time.perf_counter()
        stats = import_mbox(es, settings, user.id, mbox, refresh=True)
        elapsed = time.perf_counter() - started
        rates.append(stats.indexed / elapsed)
        print(
            f"  import run {run + 1}: {stats.indexed} emails in {elapsed:.2f}s = {rates[-1]:,.0f}/s"
        )
    return statistics.median(rates), user.id


def bench_search(settings: Settings, user_id: str) -> list[float]:
    """Elasticsearch alone, same questions: separates the server's share from the pipeline's."""
    es = get_elasticsearch(settings)
    timings = []
    for round_number in range(CHAT_ROUNDS):
        parsed = parse_question(QUESTIONS[round_number % len(QUESTIONS)], 30)
        started = time.perf_counter()
        search_emails(es, settings, user_id, parsed.keywords, parsed.window_days)
        timings.append(time.perf_counter() - started)
    return timings


def bench_web(settings: Settings, workdir: Path, user_id: str) -> tuple[list[float], list[str]]:
    """Chat round trips over HTTP, then the realtime figures, on one gevent web process."""
    with web_and_worker(settings, workdir) as (base, web, _worker):
        login = post(f"{base}/api/auth/login", {"email": BENCH_EMAIL, "password": BENCH_PASSWORD})
        token = login["access_token"]
        for question in QUESTIONS:  # warm up: worker processes, connections, caches
            post(f"{base}/api/chat", {"q": question}, token)
        timings = []
        for round_number in range(CHAT_ROUNDS):
            started = time.perf_counter()
            answer = post(
                f"{base}/api/chat", {"q": QUESTIONS[round_number % len(QUESTIONS)]}, token
            )
            timings.append(time.perf_counter() - started)
            assert "answer" in answer
        lines = realtime.run(settings, base, settings.web_port, web.pid, token, user_id)
        return timings, lines


def main() -> int:
    realtime.raise_fd_limit()
    with local_servers("mailchat-bench:") as (settings, workdir):
        mbox = workdir / "demo.mbox"
        started = time.perf_counter()
        count = write_mbox(mbox, owner_address=BENCH_EMAIL, today=datetime.now(UTC).date())
        print(f"generated {count} demo emails in {time.perf_counter() - started:.2f}s")
        rate, user_id = bench_import(settings, mbox)
        es_timings = bench_search(settings, user_id)
        timings, realtime_lines = bench_web(settings, workdir, user_id)
        mail_lines = bench_mail_sync(settings, workdir)
    # Fresh servers: the embedded engine's cost depends on every document in the index.
    with local_servers("mailchat-bench-mailbox:") as (mailbox_settings, mailbox_workdir):
        mailbox_lines = bench_mailbox(mailbox_settings, mailbox_workdir)
    print()
    print(f"import throughput (median of {IMPORT_RUNS}): {rate:,.0f} emails/s")
    print(
        f"Elasticsearch search alone, same questions: p50 {percentile(es_timings, 0.5) * 1000:.1f} ms, "
        f"p95 {percentile(es_timings, 0.95) * 1000:.1f} ms"
    )
    print(
        f"chat round trip over {CHAT_ROUNDS} questions: p50 {percentile(timings, 0.5) * 1000:.1f} ms, "
        f"p95 {percentile(timings, 0.95) * 1000:.1f} ms, max {max(timings) * 1000:.1f} ms"
    )
    for line in realtime_lines:
        print(line)
    for line in mail_lines:
        print(line)
    for line in mailbox_lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
