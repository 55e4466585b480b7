"""The Celery application, configured from the same settings as the web app.

Run a worker with ``celery -A celery_app worker -Q search,sync,maintenance,delivery``.
The worker never imports ``web/``; the web app builds a task-less client with
``create_celery(settings, with_tasks=False)`` and enqueues by name.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from functools import cached_property
from typing import Any

from celery import Celery, signals
from celery.app import trace

import workers.task_logs  # noqa: F401  (Celery processes log in Mailchat's format)
from shared.core.keys import SHORT_LEASE_BROKER_KEYS
from shared.core.settings import Settings, get_settings
from shared.core.task_names import (
    ALL_QUEUES,
    ASSISTANT_END_OVERDUE,
    DELIVERY_SWEEP_OUTBOX,
    QUEUE_SEARCH,
    SHORT_QUEUES,
    TASK_ROUTES,
)
from shared.index.lifecycle import beat_schedule as lifecycle_beat_schedule
from shared.sync.schedule import beat_schedule as mail_beat_schedule

# Results carry email subjects and snippets: log that a task succeeded, never what it
# returned (Celery's default message includes the return value).
trace.LOG_SUCCESS = "Task %(name)s[%(id)s] succeeded in %(runtime)ss"

TASK_MODULES = ["workers.assistant", "workers.mail", "workers.delivery", "workers.index"]
TASK_MODULES.append("workers.telemetry")  # Celery metrics from signals (issue 13)

log = logging.getLogger(__name__)


def broker_transport_options(
    settings: Settings, queues: Iterable[str] | None = None
) -> dict[str, Any]:
    """Kombu Redis transport options for a process consuming ``queues`` (None: not a worker).

    A worker that takes a message records it as unacknowledged; if the worker's
    main process is killed (``kill -9``, OOM), its prefork children die with it
    (Celery sets PDEATHSIG) and nothing acknowledges or rejects the message:
    only the visibility timeout brings it back, when some consumer's periodic
    sweep finds it older than that. That timeout is one number per transport
    and must exceed the longest task (sync runs for up to an hour), or a live
    task is delivered twice. A worker consuming only ``SHORT_QUEUES`` (answers,
    killed by their 30 s hard limit) therefore keeps its unacknowledged
    messages under keys of its own with ``search_visibility_timeout_seconds``:
    its sweep never sees the long tasks, the others' never see its messages.
    The trade-off: a worker consuming search *and* long queues takes the long
    timeout for everything (an answer it dropped waits up to an hour), so run
    the search queue on its own worker, as ``make run`` does.
    """
    short = queues is not None and bool(set(queues)) and set(queues) <= set(SHORT_QUEUES)
    timeout = (
        settings.search_visibility_timeout_seconds
        if short
        else settings.broker_visibility_timeout_seconds
    )
    options: dict[str, Any] = {
        "visibility_timeout": timeout,
        # Sweep for tasks whose worker died every few seconds (the scan is one ZRANGE),
        # so they are redelivered soon after their visibility timeout, not minutes later.
        "unacked_restore_interval": min(10, timeout),
        "unacked_restore_throttle": 1,
        # A worker killed while sweeping must not block the sweep for the default 5 minutes.
        "unacked_mutex_expire": min(300, timeout),
    }
    if short:
        options.update(SHORT_LEASE_BROKER_KEYS)
    return options


def longest_task_seconds(app: Celery, queues: Iterable[str]) -> float:
    """The longest a task routed to ``queues`` may hold its message: hard limit + retry delay."""
    wanted = set(queues)
    longest = 0.0
    for name, task in app.tasks.items():
        if name.startswith("celery."):
            continue  # Celery's own (chords, result cleanup): Mailchat sends none of them
        route = app.amqp.router.route({}, name)
        queue = getattr(route.get("queue"), "name", route.get("queue"))
        if queue in wanted:
            limit = float(task.time_limit or app.conf.task_time_limit or float("inf"))
            longest = max(longest, limit + float(getattr(task, "retry_backoff_max", 0) or 0))
    return longest


def _queue_list(value: str | Iterable[str] | None) -> list[str] | None:
    """The worker's ``-Q`` option (a list, or a comma-separated string), None if not given."""
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    return [q.strip() for q in value if q.strip()] or None


def worker_command(
    *,
    concurrency: int,
    loglevel: str = "INFO",
    hostname: str = "",
    queues: Iterable[str] = ALL_QUEUES,
) -> list[str]:
    """The command that runs a worker, on every queue unless told (bench and tests).

    ``make run`` runs two (devtools/supervisor.py): one on the search queue, one on the rest.
    """
    import sys

    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_app",
        "worker",
        f"--loglevel={loglevel}",
        f"--queues={','.join(queues)}",
        f"--concurrency={concurrency}",
    ]
    return command + ([f"--hostname={hostname}"] if hostname else [])


class SendingClient(Celery):
    """The web's task-less client: it sends tasks and never reads a result.

    Celery's ``send_task`` does not follow ``task_ignore_result``: unless told, it
    subscribes to the task's result channel, through the app's backend, which is
    per thread and so, under gevent, per request greenlet: every question built a
    Redis backend, its connection pool, a connection (a DNS lookup included) and a
    pub/sub subscription: a third of the web process's CPU per question (15.2 ms,
    9.8 ms without; ``make bench`` chat). Here no result is asked for unless told,
    and the one backend (``send_task``'s ``AsyncResult`` still wants it) is the
    process's: its Redis pool is safe to share between greenlets.
    """

    @cached_property
    def backend(self) -> Any:  # type: ignore[override]
        return self._get_backend()

    def send_task(self, name: str, *args: Any, **options: Any) -> Any:
        options.setdefault("ignore_result", True)
        return super().send_task(name, *args, **options)


def create_celery(settings: Settings | None = None, *, with_tasks: bool = True) -> Celery:
    """Build a Celery app from settings; ``with_tasks`` registers the worker's tasks."""
    settings = settings or get_settings()
    app = (Celery if with_tasks else SendingClient)(
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
        broker_transport_options=broker_transport_options(settings),
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
    # Questions whose task never ran (or died with its worker) end with an error. A sweep
    # that waits longer than its interval is superseded by the next one, so they never pile up.
    app.conf.beat_schedule["assistant-end-overdue"] = {
        "task": ASSISTANT_END_OVERDUE,
        "schedule": settings.answer_sweep_seconds,
        "options": {"expires": settings.answer_sweep_seconds},
    }
    if with_tasks:
        _choose_lease_when_a_worker_starts(app, settings)
    return app


def _choose_lease_when_a_worker_starts(app: Celery, settings: Settings) -> None:
    """Give a worker the transport options of the queues it consumes (``-Q``), before it connects."""

    def on_worker_init(sender: object, instance: Any, conf: Any, options: Any, **_: Any) -> None:
        if instance.app is not app:
            return
        queues = _queue_list(options.get("queues"))
        conf.broker_transport_options = broker_transport_options(settings, queues)
        timeout = conf.broker_transport_options["visibility_timeout"]
        longest = longest_task_seconds(app, queues or ALL_QUEUES)
        log.info("broker visibility timeout %ss for queues %s", timeout, queues or "all")
        if "unacked_key" in conf.broker_transport_options and timeout <= longest:
            log.warning(
                "visibility timeout %ss is not longer than the longest task on %s (%ss): "
                "a task still running may be delivered a second time",
                timeout,
                queues or "all queues",
                longest,
            )

    signals.celeryd_init.connect(on_worker_init, weak=False)


app = create_celery()
