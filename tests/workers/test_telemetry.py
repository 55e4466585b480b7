"""Celery metrics under the prefork pool: each task counted once, on the worker's own port."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from devtools.servers import free_port
from shared.core.task_names import DELIVERY_SWEEP_OUTBOX
from tests.live import start_worker


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples, name: str, **labels: str) -> float:  # type: ignore[no-untyped-def]
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.timeout(90)
def test_prefork_tasks_are_counted_once_on_the_workers_port(settings, tmp_path) -> None:
    import dataclasses

    from celery_app import create_celery

    # Database 9: no other worker of the session consumes this broker.
    own = dataclasses.replace(settings, redis_url=settings.redis_url.rsplit("/", 1)[0] + "/9")
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    # A previous run's file: wiped at start, or its count would add up with this run's.
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")
    port = free_port()
    env = dict(os.environ)
    env.update(
        MAILCHAT_REDIS_URL=own.redis_url,
        MAILCHAT_WORKER_METRICS_PORT=str(port),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
    )
    worker = start_worker(own, tmp_path / "worker.log", env, concurrency=2)
    try:
        assert not (metrics_dir / "counter_999999.db").exists()
        client = create_celery(own, with_tasks=False)
        succeeded, failed = 24, 3
        for _ in range(succeeded):
            client.send_task(DELIVERY_SWEEP_OUTBOX)
        for _ in range(failed):
            client.send_task(DELIVERY_SWEEP_OUTBOX, kwargs={"unexpected": 1})
        url = f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 40
        samples = scrape(url)
        while time.monotonic() < deadline:
            done = value(
                samples, "celery_tasks_total", task=DELIVERY_SWEEP_OUTBOX, state="succeeded"
            ) + value(samples, "celery_tasks_total", task=DELIVERY_SWEEP_OUTBOX, state="failed")
            if done >= succeeded + failed:
                break
            time.sleep(0.3)
            samples = scrape(url)
        time.sleep(1.0)  # anything counted twice would show up by now
        samples = scrape(url)
        task = DELIVERY_SWEEP_OUTBOX
        assert value(samples, "celery_tasks_total", task=task, state="succeeded") == succeeded
        assert value(samples, "celery_tasks_total", task=task, state="failed") == failed
        assert value(samples, "celery_task_runtime_seconds_count", task=task) == succeeded
        assert (
            value(samples, "celery_task_runtime_seconds_bucket", task=task, le="30.0") == succeeded
        )
        # Both pool processes ran tasks: one file per process, summed by the collector.
        pids = {p.name.rsplit("_", 1)[1] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) >= 2, pids
        # Labels stay bounded: only task names and the fixed states appear.
        states = {
            dict(labels)["state"] for (name, labels) in samples if name == "celery_tasks_total"
        }
        assert states <= {"succeeded", "failed", "retried", "rejected", "revoked"}
    finally:
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
