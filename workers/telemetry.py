"""Celery metrics from Celery's signals: tasks by name and state, run times, retries.

Why signals: every task is counted the same way without touching the tasks,
and the counters are written in the pool process that ran the task, so with
prometheus_client's multiprocess mode a task is counted exactly once however
many prefork children there are. The worker's main process serves them on
``MAILCHAT_WORKER_METRICS_PORT`` when the worker runs on its own host (its
``PROMETHEUS_MULTIPROC_DIR`` is then its own: the files of earlier runs are
removed at start, the documented way); with port 0 the worker writes into the web's directory and
the web's /metrics shows its counters (``make run``).

Labels are bounded: ``task`` is a registered task name or "other", ``state``
one of ``shared.core.metrics.CELERY_TASK_STATES``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from celery import signals

from shared.core import metrics
from shared.core.settings import get_settings

log = logging.getLogger(__name__)

_started: dict[str, float] = {}  # task id -> perf_counter at prerun, in this pool process

_STATES = {"SUCCESS": "succeeded", "FAILURE": "failed", "RETRY": "retried"}


def _task_label(task: Any) -> str:
    name = getattr(task, "name", None)
    app = getattr(task, "app", None)
    if isinstance(name, str) and app is not None and name in app.tasks:
        return name
    return "other"


@signals.worker_init.connect
def _serve_metrics(**_: Any) -> None:
    """Before the pool forks: wipe this worker's metric files, then serve them."""
    settings = get_settings()
    if not settings.worker_metrics_port:
        return
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        log.error(
            "MAILCHAT_WORKER_METRICS_PORT is set but PROMETHEUS_MULTIPROC_DIR is not: "
            "the pool processes' metrics would be invisible; not serving /metrics"
        )
        return
    # Counters of a previous run must not add up with this one's. This process opened its
    # own files when the metrics were defined (at import, before this signal), so remove
    # every other process's files rather than the whole directory (deploy's entrypoint
    # wipes it before the process even starts).
    me = f"_{os.getpid()}"
    for stale in Path(directory).glob("*.db"):
        if not stale.stem.endswith(me):
            stale.unlink(missing_ok=True)
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(settings.worker_metrics_port, settings.worker_metrics_host, registry)
    log.info(
        "worker metrics on http://%s:%s/metrics",
        settings.worker_metrics_host,
        settings.worker_metrics_port,
    )


@signals.worker_process_init.connect
def _initialise_series(**_: Any) -> None:
    """Create every task's series at 0 in each pool process, so rates and alerts see
    "nothing happened" as 0 rather than as a missing series."""
    from celery import current_app

    for name in current_app.tasks:
        if name.startswith("celery."):
            continue
        metrics.CELERY_TASK_RETRIES.labels(task=name)
        for state in ("succeeded", "failed", "retried"):
            metrics.CELERY_TASKS.labels(task=name, state=state)


@signals.task_prerun.connect
def _task_started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.perf_counter()


@signals.task_postrun.connect
def _task_ended(
    task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any
) -> None:
    started = _started.pop(task_id or "", None)
    label = _task_label(task)
    outcome = _STATES.get(state or "")
    if outcome is None:
        return  # an ignored or unknown state: nothing ended
    metrics.CELERY_TASKS.labels(task=label, state=outcome).inc()
    if outcome == "succeeded" and started is not None:
        metrics.CELERY_TASK_RUNTIME.labels(task=label).observe(time.perf_counter() - started)


@signals.task_retry.connect
def _task_retried(sender: Any = None, **_: Any) -> None:
    metrics.CELERY_TASK_RETRIES.labels(task=_task_label(sender)).inc()


@signals.task_rejected.connect
def _task_rejected(**_: Any) -> None:
    metrics.CELERY_TASKS.labels(task="other", state="rejected").inc()


@signals.task_revoked.connect
def _task_revoked(sender: Any = None, **_: Any) -> None:
    metrics.CELERY_TASKS.labels(task=_task_label(sender), state="revoked").inc()


@signals.worker_process_shutdown.connect
def _pool_process_exited(pid: int | None = None, **_: Any) -> None:
    """A pool process is going: drop its live gauges (its counters stay, they happened)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client.multiprocess import mark_process_dead

        mark_process_dead(pid or os.getpid())
