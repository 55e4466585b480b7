"""Liveness and readiness.

``/healthz`` says the process answers and touches nothing else, so a slow
dependency never gets a healthy process restarted. ``/readyz`` says it can
do its job, checking what a request needs for real: Redis writes and reads a
key and carries a pub/sub message (the doorbells), Elasticsearch answers and
the write alias points at a write index, and at least one Celery worker
answers a ping. Checks run side by side, each with its own timeout; the
result is cached for ``MAILCHAT_READYZ_CACHE_SECONDS`` so a storm of probes
costs the dependencies one round. During the startup grace a failing check
answers 503 ``starting`` without warnings or metrics (dependencies are
expected to come up around a fresh instance). The JSON names every check,
its state and its time.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from flask import Blueprint, current_app, jsonify

from shared.core import metrics, probes
from web.errors import error_response
from web.extensions import Services, services
from web.realtime.shutdown import shutting_down

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

READY_RETRY_AFTER_SECONDS = 5
# Seconds each check may take; a worker ping answers in milliseconds when one is there.
CHECK_TIMEOUTS = {"redis": 1.0, "pubsub": 1.0, "elasticsearch": 2.0, "celery": 1.0}
_EXTENSION = "mailchat.readyz"


@dataclass
class _Readiness:
    """Per-app state: when the app started and the last result."""

    started: float = field(default_factory=time.monotonic)
    instance: str = field(default_factory=lambda: secrets.token_hex(6))
    lock: threading.Lock = field(default_factory=threading.Lock)
    cached_at: float = -1e9
    cached: tuple[bool, dict[str, dict[str, Any]]] | None = None


@bp.record_once
def _attach(state: Any) -> None:
    state.app.extensions[_EXTENSION] = _Readiness()


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


def _check_redis(svc: Services, instance: str) -> str:
    return probes.redis_round_trip(svc.redis, svc.settings, instance)


def _check_pubsub(svc: Services, instance: str) -> str:
    return probes.pubsub_round_trip(svc.redis, svc.settings, instance, CHECK_TIMEOUTS["pubsub"])


def _check_elasticsearch(svc: Services, instance: str) -> str:
    return probes.write_alias(svc.elasticsearch, svc.settings, CHECK_TIMEOUTS["elasticsearch"])


def _check_celery(svc: Services, instance: str) -> str:
    replies = svc.celery.control.ping(timeout=CHECK_TIMEOUTS["celery"], limit=1)
    return "ok" if replies else "no worker answered"


CHECKS: dict[str, Callable[[Services, str], str]] = {
    "redis": _check_redis,
    "pubsub": _check_pubsub,
    "elasticsearch": _check_elasticsearch,
    "celery": _check_celery,
}


def _timed(check: Callable[[Services, str], str], svc: Services, instance: str) -> Any:
    started = time.perf_counter()
    try:
        state = check(svc, instance)
    except Exception as exc:  # any failure means "not ready", whatever its type
        state = f"unreachable ({type(exc).__name__})"
    return state, time.perf_counter() - started


def run_checks(svc: Services, instance: str) -> dict[str, dict[str, Any]]:
    """Every check side by side; one that overruns its timeout is reported as such."""
    results: dict[str, dict[str, Any]] = {}
    # Not a `with` block: its exit would wait for a hung check, defeating the timeouts.
    pool = ThreadPoolExecutor(max_workers=len(CHECKS), thread_name_prefix="readyz")
    futures = {name: pool.submit(_timed, check, svc, instance) for name, check in CHECKS.items()}
    started = time.monotonic()
    for name, future in futures.items():
        limit = CHECK_TIMEOUTS[name] + 0.5  # the client's own timeout should fire first
        try:
            state, seconds = future.result(timeout=max(0.0, started + limit - time.monotonic()))
        except FutureTimeout:
            state, seconds = f"timeout after {CHECK_TIMEOUTS[name]}s", limit
        results[name] = {"status": state, "seconds": round(seconds, 4)}
    pool.shutdown(wait=False, cancel_futures=True)
    return results


def _evaluate(readiness: _Readiness, svc: Services) -> tuple[bool, dict[str, dict[str, Any]], bool]:
    """(ready, checks, in_grace), from the cache when it is fresh."""
    now = time.monotonic()
    in_grace = now - readiness.started < svc.settings.readyz_startup_grace_seconds
    with readiness.lock:
        if readiness.cached and now - readiness.cached_at < svc.settings.readyz_cache_seconds:
            return readiness.cached[0], readiness.cached[1], in_grace
        checks = run_checks(svc, readiness.instance)
        ready = all(check["status"] == "ok" for check in checks.values())
        readiness.cached, readiness.cached_at = (ready, checks), time.monotonic()
    for name, check in checks.items():
        metrics.READYZ_CHECK_SECONDS.labels(check=name).observe(check["seconds"])
        if check["status"] == "ok" or not in_grace:
            metrics.READYZ_CHECK_UP.labels(check=name).set(1 if check["status"] == "ok" else 0)
        if check["status"] != "ok" and not in_grace:
            log.warning("readyz: %s failed: %s", name, check["status"])
    return ready, checks, in_grace


@bp.get("/readyz")
def readyz() -> Any:
    if shutting_down.is_set():
        return error_response(
            503, "shutting_down", "This instance is shutting down.", retry_after=1
        )
    ready, checks, in_grace = _evaluate(current_app.extensions[_EXTENSION], services())
    if ready:
        return jsonify({"status": "ready", "checks": checks})
    failing = [name for name, check in checks.items() if check["status"] != "ok"]
    response = jsonify(
        {
            "error": {
                "code": "starting" if in_grace else "not_ready",
                "message": "; ".join(f"{name}: {checks[name]['status']}" for name in failing),
                "field": failing[0],
            },
            "checks": checks,
        }
    )
    response.status_code = 503
    response.headers["Retry-After"] = str(READY_RETRY_AFTER_SECONDS)
    return response
