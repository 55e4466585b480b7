"""Prometheus for the web app: request metrics plus ``shared.core.metrics``, at ``/metrics``.

Under gunicorn with several workers (``PROMETHEUS_MULTIPROC_DIR`` set) the
multiprocess exporter aggregates every worker's samples; otherwise a plain
exporter serves this process's registry.
"""

from __future__ import annotations

import os

from flask import Flask
from prometheus_flask_exporter import PrometheusMetrics

_exporter: PrometheusMetrics | None = None


def init_metrics(app: Flask) -> None:
    """Expose /metrics. The exporter is created once per process: its request
    metrics live in the global registry, which rejects a second registration."""
    global _exporter
    if _exporter is None:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

            _exporter = GunicornInternalPrometheusMetrics.for_app_factory(group_by="endpoint")
        else:
            _exporter = PrometheusMetrics.for_app_factory(group_by="endpoint")
    _exporter.init_app(app)
