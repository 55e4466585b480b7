"""Prometheus for the web app: request metrics plus ``shared.core.metrics``, at ``/metrics``.

Under gunicorn with several workers (``PROMETHEUS_MULTIPROC_DIR`` set) the
multiprocess exporter aggregates every worker's samples (and the Celery
worker's, when it shares the directory as under ``make run``); otherwise a
plain exporter serves this process's registry. Every scrape also reads the
Redis backlog (queue depth, dead letters) through the app's own Redis client.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, current_app
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_flask_exporter import PrometheusMetrics

from shared.core.keys import RedisKeys
from shared.core.metrics import RedisBacklogCollector
from shared.core.task_names import ALL_QUEUES

# Request latency buckets: the default ones plus 2 s, the chat-response SLO's threshold
# (95 % of POST /api/chat under 2 s needs a bucket edge at exactly 2 s).
REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0, 30.0)

_exporter: PrometheusMetrics | None = None


class _Forward:
    """Hands a registry's samples to another registry (one scrape = one exposition)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Any:
        return self.registry.collect()


def _scrape_registry(base: CollectorRegistry) -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)  # documented way: a fresh collector per scrape
    else:
        registry.register(_Forward(base))
    svc = current_app.extensions.get("mailchat")
    if svc is not None:
        dead_letters = RedisKeys(svc.settings.key_prefix).dead_letters()
        registry.register(RedisBacklogCollector(svc.redis, dead_letters, ALL_QUEUES))
    return registry


class _MailchatMetrics(PrometheusMetrics):  # type: ignore[misc]
    """The exporter, with the Redis backlog added to each scrape."""

    def generate_metrics(self, accept_header: Any = None, names: Any = None) -> tuple[str, str]:
        registry: Any = _scrape_registry(self.registry)
        if names:
            registry = registry.restricted_registry(names)
        encode, content_type = choose_encoder(accept_header)
        return encode(registry).decode("utf-8"), content_type


class _MailchatMultiprocessMetrics(_MailchatMetrics):
    """Multiprocess flavour: request metrics written to the shared directory."""

    def __init__(self, app: Any = None, **kwargs: Any) -> None:
        from prometheus_flask_exporter.multiprocess import _check_multiproc_env_var

        _check_multiproc_env_var()
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        super().__init__(app=app, registry=registry, **kwargs)


def init_metrics(app: Flask) -> None:
    """Expose /metrics. The exporter is created once per process: its request
    metrics live in the global registry, which rejects a second registration."""
    global _exporter
    if _exporter is None:
        cls = (
            _MailchatMultiprocessMetrics
            if os.environ.get("PROMETHEUS_MULTIPROC_DIR")
            else _MailchatMetrics
        )
        _exporter = cls.for_app_factory(group_by="endpoint", buckets=REQUEST_BUCKETS)
    _exporter.init_app(app)
