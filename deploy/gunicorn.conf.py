"""gunicorn settings, derived from Mailchat's settings object.

gevent workers: every SSE stream and WebSocket is a long-lived request, and a
greenlet per connection holds thousands of them in one process where a
thread per connection (gthread) would hold dozens. flask-sock and redis-py
both cooperate with gevent's monkey-patching, which gunicorn applies before
the app is imported.
"""

import gc
import os
import signal

from shared.core.settings import Settings

_settings = Settings.from_env()

bind = f"{_settings.web_host}:{_settings.web_port}"
workers = _settings.web_workers
# gevent, with gunicorn's own error pages (431, 414, 400) in the API's JSON shape.
worker_class = "web.gunicorn_worker.JsonErrorGeventWorker"
worker_connections = max(1000, _settings.ws_max_connections + 100)
timeout = 60
graceful_timeout = 15
accesslog = "-"
# The path only (%(U)s), never the query string: it carries SSE tickets (?ticket=), questions
# (?q=), the Gmail push secret (?token=) and OAuth codes. No Referer either: it is a URL too.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s" %(M)sms'
forwarded_allow_ips = "127.0.0.1"
# One control socket per installation, so two checkouts can run side by side.
control_socket = str(_settings.data_path / "gunicorn.ctl")


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """Freeze what the app loaded out of the garbage collector; shutdown on SIGTERM.

    Every full collection walks every tracked object, and a gevent process pauses
    all its sockets while it does: with 1,000 sockets, ~270k objects took 110-220 ms
    (the p99 of ws_fanout). The app's modules, functions and classes live as long
    as the process, so ``gc.freeze()`` moves them to the permanent generation the
    collector skips (about two thirds; pauses fell to 40-90 ms). A larger youngest
    generation (50,000 allocations instead of 700) promotes far fewer objects that
    are merely alive for a moment (each waiting socket's timer, the event being
    sent), so full collections, whose pause is the same, come ten times rarer and,
    in ws_fanout, not at all; cyclic garbage waits a little longer to be freed.

    On SIGTERM the app's shutdown flag rises before gunicorn stops the worker:
    /readyz then answers 503, sockets get advice + close 1012 and SSE streams
    end with "reconnect", all within graceful_timeout, while gunicorn lets
    requests in flight finish.
    """
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    from web.realtime.shutdown import begin_shutdown_from_signal

    original = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):  # type: ignore[no-untyped-def]
        begin_shutdown_from_signal()  # not inline: the handler may interrupt a lock holder
        if callable(original):
            original(signum, frame)

    signal.signal(signal.SIGTERM, on_term)


def child_exit(server, worker):  # type: ignore[no-untyped-def]
    """Drop a dead worker's metric files so /metrics does not count it forever."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return  # single-process metrics: nothing on disk to clean
    from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

    GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
