"""/metrics under gunicorn with several workers: totals equal what happened.

prometheus_client's multiprocess mode, the documented way: a fresh
directory, one file per process, ``mark_process_dead`` when gunicorn reaps a
worker (deploy/gunicorn.conf.py's child_exit). Also ``promtool check metrics``
on the real scrape.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import pytest

from tests.live import http, start_web
from tests.workers.test_telemetry import value

REQUESTS = 60


def scrape_text(base: str) -> str:
    status, _, body = http("GET", f"{base}/metrics")
    assert status == 200
    return body.decode()


def parse(text: str):  # type: ignore[no-untyped-def]
    from prometheus_client.parser import text_string_to_metric_families

    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def served(base: str) -> float:
    samples = parse(scrape_text(base))
    return value(
        samples,
        "flask_http_request_duration_seconds_count",
        method="GET",
        endpoint="client.client_config",
        status="200",
    )


@pytest.fixture(scope="module")
def four_workers(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    """One gunicorn with 4 workers for the module (starting one costs ~10 s on 2 cores)."""
    tmp_path = tmp_path_factory.mktemp("metrics")
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    web = start_web(tmp_path, {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}, workers=4)
    yield web, metrics_dir
    web.stop()


@pytest.mark.timeout(90)
def test_requests_over_four_workers_add_up(four_workers) -> None:
    web, metrics_dir = four_workers
    before = served(web.base)
    for _ in range(REQUESTS):
        assert http("GET", f"{web.base}/client/config")[0] == 200
    assert served(web.base) - before == REQUESTS
    counters = {p.name for p in metrics_dir.glob("counter_*.db")}
    assert len(counters) >= 2, f"requests were not spread over workers: {counters}"

    # A worker killed outright: gunicorn reaps it, child_exit drops its live gauges,
    # and what it counted still counts.
    pids = sorted(int(p.stem.rsplit("_", 1)[1]) for p in metrics_dir.glob("gauge_livesum_*.db"))
    assert pids, "ws_connections_active / sse_streams_active write live gauges per worker"
    victim = pids[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while (metrics_dir / f"gauge_livesum_{victim}.db").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (metrics_dir / f"gauge_livesum_{victim}.db").exists()
    assert served(web.base) - before == REQUESTS


@pytest.mark.timeout(60)
def test_promtool_check_metrics_passes_on_a_real_scrape(four_workers) -> None:
    promtool = shutil.which("promtool")
    if not promtool:
        pytest.skip("promtool missing; install it with: apt-get install prometheus")
    web, _ = four_workers
    http("GET", f"{web.base}/client/config")
    text = scrape_text(web.base)
    assert "celery_queue_length" in text and "delivery_dead_letters" in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr
