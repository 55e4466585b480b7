"""gunicorn settings, derived from Mailchat's settings object.

gthread workers: POST /api/chat blocks while a Celery worker answers, so each
process serves several requests at once on threads.
"""

from shared.settings import Settings

_settings = Settings.from_env()

bind = f"{_settings.web_host}:{_settings.web_port}"
workers = _settings.web_workers
worker_class = "gthread"
threads = 8
timeout = 60
graceful_timeout = 10
accesslog = "-"
forwarded_allow_ips = "127.0.0.1"
# One control socket per installation, so two checkouts can run side by side.
control_socket = str(_settings.data_path / "gunicorn.ctl")


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """Drop a dead worker's metric files so /metrics does not count it forever."""
    from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
