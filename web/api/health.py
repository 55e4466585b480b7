"""Liveness and readiness.

``/healthz`` says the process answers; ``/readyz`` says it can do its job:
Redis answers, Elasticsearch answers and the write alias exists. A failing
check is named, so an operator knows where to look.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, jsonify

from shared.index.template import alias_ready
from web.errors import error_response
from web.extensions import services
from web.realtime.shutdown import shutting_down

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)

READY_RETRY_AFTER_SECONDS = 5


@bp.get("/healthz")
def healthz() -> Any:
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> Any:
    svc = services()
    if shutting_down.is_set():
        return error_response(
            503, "shutting_down", "This instance is shutting down.", retry_after=1
        )
    checks: dict[str, str] = {}
    try:
        svc.redis.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # any failure means "not ready", whatever its type
        log.warning("readyz: redis failed: %r", exc)
        checks["redis"] = "unreachable"
    try:
        checks["elasticsearch"] = (
            "ok" if alias_ready(svc.elasticsearch, svc.settings) else "write alias missing"
        )
    except Exception as exc:
        log.warning("readyz: elasticsearch failed: %r", exc)
        checks["elasticsearch"] = "unreachable"
    failing = [name for name, state in checks.items() if state != "ok"]
    if failing:
        response = error_response(
            503,
            "not_ready",
            "; ".join(f"{name}: {checks[name]}" for name in failing),
            field=failing[0],
            retry_after=READY_RETRY_AFTER_SECONDS,
        )
        return response
    return jsonify({"status": "ready", "checks": checks})
