"""``make bench``: the figures the issues ask for, measured on real servers.

- Import throughput of the demo mbox (emails/s), parse + bulk index.
- Chat round trip over HTTP (gunicorn → Redis → Celery worker → Elasticsearch
  → back), p50/p95 over 100 questions.

Everything runs on fresh local servers in a temporary directory (or on the
configured URLs), so results do not depend on a running ``make run``.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from bench import realtime
from bench.mail_sync import bench_mail_sync
from celery_app import worker_command
from devtools.demo_mailbox import write_mbox
from devtools.run import PROJECT_ROOT, settings_environment, start_missing_servers
from devtools.servers import free_port
from shared.assistant.answer import parse_question
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.settings import Settings
from shared.identity.users import create_user
from shared.index.search import search_emails
from shared.index.template import bootstrap
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


def post(url: str, body: dict, token: str | None = None) -> dict:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=30) as response:
        result: dict = json.loads(response.read())
        return result


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


def bench_web(settings: Settings, workdir: Path, user_id: str) -> tuple[list[float], list[str]]:
    """Chat round trips over HTTP, then the realtime figures, on one gevent web process."""
    env = settings_environment(settings)
    env["MAILCHAT_WEB_WORKERS"] = "1"  # memory per socket is measured on one process
    env["MAILCHAT_WS_ALLOWED_ORIGINS"] = f"http://{settings.web_host}:{settings.web_port}"
    with (
        open(workdir / "worker.log", "wb") as worker_log,
        open(workdir / "web.log", "wb") as web_log,
    ):
        worker = subprocess.Popen(
            worker_command(concurrency=settings.worker_concurrency, loglevel="WARNING"),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        web = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--config",
                "deploy/gunicorn.conf.py",
                "--access-logfile",
                "/dev/null",
                "wsgi:app",
            ],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=web_log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://{settings.web_host}:{settings.web_port}"
    try:
        wait_http(f"{base}/healthz")
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
    finally:
        for process in (web, worker):
            process.terminate()
            process.wait(30)


def main() -> int:
    realtime.raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="mailchat-bench-") as tmp:
        workdir = Path(tmp)
        base_settings = Settings.from_env(
            data_dir=str(workdir), web_port=free_port(), key_prefix="mailchat-bench:"
        ).with_secret_key()
        settings, servers = start_missing_servers(base_settings)
        try:
            bootstrap(get_elasticsearch(settings), settings)
            mbox = workdir / "demo.mbox"
            started = time.perf_counter()
            count = write_mbox(mbox, owner_address=BENCH_EMAIL, today=datetime.now(UTC).date())
            print(f"generated {count} demo emails in {time.perf_counter() - started:.2f}s")
            rate, user_id = bench_import(settings, mbox)
            es_timings = bench_search(settings, user_id)
            timings, realtime_lines = bench_web(settings, workdir, user_id)
            mail_lines = bench_mail_sync(settings, workdir)
        finally:
            for server in servers:
                server.stop()
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
