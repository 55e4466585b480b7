"""Issue 11's figures: your own mailbox end to end, and what the embedded engine costs.

- Upload + import of a 50,000-message Takeout mbox through the real path: sign up over
  HTTP, tus upload in 8 MiB PATCHes to gunicorn, the Celery worker imports it; emails/s
  from the first byte sent to ``last_success_at``, and the worker's peak RSS (every
  process of the worker: the prefork children do the parsing).
- Full-text search time on the configured engine (noida-db unless a URL is set) with
  2,000, 10,000 and 50,000 emails in the index (the embedded engine scans them all).

Run alone with ``python -m bench.mailbox`` (own servers in a temporary directory) or as
part of ``make bench``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.results import Figure
from bench.stack import local_servers, web_and_worker
from devtools.demo_mailbox import write_mbox
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.settings import Settings
from shared.identity.users import create_user
from shared.index.search import search_emails
from shared.index.writer import import_mbox

BIG = 50_000
SEARCH_SIZES = (2_000, 10_000, BIG)
SEARCH_QUERIES = ("interview", "offer letter", "invoice", "newsletter digest", "moving help")
CHUNK = 8 * 1024 * 1024


def tree_rss_bytes(root_pid: int) -> int:
    """Resident memory of ``root_pid`` and every descendant (the worker and its children)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry.name)
        parents[pid] = int(fields.get("PPid", "0").strip())
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) * 1024
    family = {root_pid}
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in family and pid not in family:
                family.add(pid)
                grew = True
    return sum(rss.get(pid, 0) for pid in family)


def _request(method: str, url: str, body: bytes | None, headers: dict[str, str]) -> Any:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=300)
    except urllib.error.HTTPError as error:
        raise RuntimeError(f"{method} {url}: {error.code} {error.read()[:300]!r}") from error


def search_seconds(settings: Settings, user_id: str) -> float:
    """Median time of a few full-text questions, as the assistant asks them."""
    # The embedded engine needs seconds per query at 50k: well past the client's default.
    es = get_elasticsearch(settings).options(request_timeout=300)
    # Measure the engine, not the assistant's deadline (MAILCHAT_SEARCH_TIMEOUT_SECONDS).
    settings = dataclasses.replace(settings, search_timeout_seconds=300.0)
    timings = []
    for query in SEARCH_QUERIES:
        started = time.perf_counter()
        search_emails(es, settings, user_id, query, 365)
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def upload_and_import(settings: Settings, workdir: Path, mbox: Path) -> tuple[float, int, int]:
    """Sign up, upload ``mbox`` over tus, wait for the import; (seconds, emails, peak RSS)."""
    with web_and_worker(settings, workdir, concurrency=1, log_prefix="mailbox-") as (
        base,
        _web,
        worker,
    ):
        return _upload_and_import(base, worker, mbox)


def _upload_and_import(
    base: str, worker: subprocess.Popen[bytes], mbox: Path
) -> tuple[float, int, int]:
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], tree_rss_bytes(worker.pid))
            stop.wait(0.2)

    try:
        email, password = f"bench-{time.time_ns()}@example.com", "bench mailbox password"
        json_headers = {"Content-Type": "application/json"}
        _request(
            "POST",
            f"{base}/api/auth/register",
            json.dumps({"email": email, "password": password}).encode(),
            json_headers,
        )
        with _request(
            "POST",
            f"{base}/api/auth/login",
            json.dumps({"email": email, "password": password}).encode(),
            json_headers,
        ) as answer:
            token = json.loads(answer.read())["access_token"]
        auth = {"Authorization": f"Bearer {token}", "Tus-Resumable": "1.0.0"}
        threading.Thread(target=sample, daemon=True).start()
        size = mbox.stat().st_size
        started = time.perf_counter()
        meta = "filename " + base64.b64encode(mbox.name.encode()).decode()
        with _request(
            "POST",
            f"{base}/api/uploads",
            None,
            {**auth, "Upload-Length": str(size), "Upload-Metadata": meta},
        ) as answer:
            location = answer.headers["Location"]
        offset = 0
        with open(mbox, "rb") as handle:
            while offset < size:
                chunk = handle.read(CHUNK)
                headers = {
                    **auth,
                    "Upload-Offset": str(offset),
                    "Content-Type": "application/offset+octet-stream",
                }
                with _request("PATCH", f"{base}{location}", chunk, headers) as answer:
                    offset = int(answer.headers["Upload-Offset"])
                    account_id = answer.headers.get("Mailchat-Account-Id")
        uploaded = time.perf_counter() - started
        print(f"  uploaded {size / 1e6:,.0f} MB in {uploaded:.1f}s")
        while True:
            with _request("GET", f"{base}/api/accounts", None, auth) as answer:
                listed = json.loads(answer.read())["accounts"]
            account = next(a for a in listed if a["id"] == account_id)
            if account["last_success_at"] or account["state"] == "error":
                break
            time.sleep(0.5)
        elapsed = time.perf_counter() - started
        return elapsed, int(account["message_count"]), peak[0]
    finally:
        stop.set()


def bench_mailbox(settings: Settings, workdir: Path, big: Path | None = None) -> list[Figure]:
    """The figures. Uses its own key prefix's users on ``settings``' servers; ``big`` is a
    ``BIG``-email mbox already generated (``make bench`` shares it with ``ingest``)."""
    es, r = get_elasticsearch(settings), get_redis(settings)
    today = datetime.now(UTC).date()
    figures = []
    # Search cost by index size: separate owners, since the embedded engine scans everyone's mail.
    done = 0
    searcher = None
    helpers: list[str] = []
    for size in SEARCH_SIZES[:-1]:
        part = workdir / f"search-{size}.mbox"
        write_mbox(part, owner_address="bench@example.com", today=today, count=size - done, days=60)
        user = create_user(
            r, settings, f"search-{size}-{time.time_ns()}@example.com", "bench password 1"
        )
        import_mbox(es, settings, user.id, part, refresh=True)
        helpers.append(user.id)
        searcher = searcher or user.id
        done = size
        figures.append(_search_figure(size, search_seconds(settings, searcher)))
        print(" ", figures[-1].line(), flush=True)
        part.unlink()
    es.delete_by_query(
        index=f"{settings.index_alias}-*", query={"terms": {"owner_id": helpers}}, refresh=True
    )
    if big is None:
        big = workdir / "takeout-50k.mbox"
        started = time.perf_counter()
        # Inside the retention.
        write_mbox(big, owner_address="bench@example.com", today=today, count=BIG, days=60)
        print(f"  generated {BIG:,} emails in {time.perf_counter() - started:.0f}s")
    megabytes = round(big.stat().st_size / 1e6)
    elapsed, count, peak = upload_and_import(settings, workdir, big)
    detail = {"emails": count, "mbox_mb": megabytes, "seconds": round(elapsed, 1)}
    figures[:0] = [
        Figure("mailbox.upload_import_rate", round(count / elapsed), "emails/s", detail=detail),
        Figure("mailbox.worker_peak_rss", round(peak / 2**20), "MiB", detail=detail),
    ]
    print(" ", figures[0].line(), flush=True)
    total = es.count(index=settings.index_alias)["count"]
    figures.append(_search_figure(total, _any_owner_search(settings)))
    return figures


def _search_figure(emails: int, seconds: float) -> Figure:
    return Figure(
        f"mailbox.search_median_{emails // 1000}k",
        round(seconds * 1000),
        "ms",
        detail={"emails_in_index": emails},
    )


def _any_owner_search(settings: Settings) -> float:
    es = get_elasticsearch(settings).options(request_timeout=300)
    hit = es.search(index=settings.index_alias, size=1, query={"match_all": {}})["hits"]["hits"][0]
    return search_seconds(settings, hit["_source"]["owner_id"])


def main() -> int:
    with local_servers("mailchat-bench:") as (settings, workdir):
        for figure in bench_mailbox(settings, workdir):
            print(figure.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
