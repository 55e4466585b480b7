"""The Celery application, configured from the same settings as the web app.

Run a worker with ``celery -A celery_app worker -Q search,sync,maintenance,delivery``.
The worker never imports ``web/``; the web app builds a task-less client with
``create_celery(settings, with_tasks=False)`` and enqueues by name.
"""

from __future__ import annotations

from celery import Celery
from celery.app import trace

import workers.task_logs  # noqa: F401  (Celery processes log in Mailchat's format)
from shared.core.settings import Settings, get_settings
from shared.core.task_names import ALL_QUEUES, DELIVERY_SWEEP_OUTBOX, QUEUE_SEARCH, TASK_ROUTES
from shared.index.lifecycle import beat_schedule as lifecycle_beat_schedule
from shared.sync.schedule import beat_schedule as mail_beat_schedule

# Results carry email subjects and snippets: log that a task succeeded, never what it
# returned (Celery's default message includes the return value).
trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"

TASK_MODULES = ["workers.assistant", "workers.mail", "workers.delivery", "workers.index"]


def worker_command(*, concurrency: int, loglevel: str = "INFO", hostname: str = "") -> list[str]:
    """The command that runs a worker on every queue (bench and tests; the Procfile says the same)."""
    import sys

    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_app",
        "worker",
        f"--loglevel={loglevel}",
        f"--queues={','.join(ALL_QUEUES)}",
        f"--concurrency={concurrency}",
    ]
    return command + ([f"--hostname={hostname}"] if hostname else [])


def create_celery(settings: Settings | None = None, *, with_tasks: bool = True) -> Celery:
    """Build a Celery app from settings; ``with_tasks`` registers the worker's tasks."""
    settings = settings or get_settings()
    app = Celery(
        "mailchat",
        broker=settings.redis_url,
        backend=settings.redis_url,
        include=TASK_MODULES if with_tasks else [],
        set_as_current=with_tasks,
    )
    app.conf.update(
        task_routes=TASK_ROUTES,
        task_default_queue=QUEUE_SEARCH,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        # Only callers that wait (POST /api/chat) need a result; keep them briefly.
        task_ignore_result=True,
        result_expires=300,
        # A crash mid-task re-queues the message instead of losing it.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={
            "visibility_timeout": settings.broker_visibility_timeout_seconds,
            # Sweep for tasks whose worker died every few seconds (the scan is one ZRANGE),
            # so they are redelivered soon after their visibility timeout, not minutes later.
            "unacked_restore_interval": min(10, settings.broker_visibility_timeout_seconds),
            "unacked_restore_throttle": 1,
            # A worker killed while sweeping must not block the sweep for the default 5 minutes.
            "unacked_mutex_expire": min(300, settings.broker_visibility_timeout_seconds),
        },
        result_backend_transport_options={"retry_policy": {"timeout": 5.0}},
        worker_hijack_root_logger=False,
        worker_send_task_events=True,  # Flower shows tasks live
        task_send_sent_event=True,
        beat_schedule={},  # sync (issue 5) and rollover/retention (issue 6) add entries here
        timezone="UTC",
    )
    # Index rollover (hourly) and retention (daily); none when native ILM owns the lifecycle.
    app.conf.beat_schedule.update(lifecycle_beat_schedule(settings))
    app.conf.beat_schedule.update(mail_beat_schedule(settings))
    app.conf.beat_schedule["delivery-sweep-outbox"] = {
        "task": DELIVERY_SWEEP_OUTBOX,
        "schedule": settings.delivery_sweep_seconds,
    }
    return app


app = create_celery()
