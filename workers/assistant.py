"""Assistant tasks: answer a question from the person's own mail, and end every question.

``assistant.answer`` takes ids only (the question is in the conversation's log).
Whatever happens to it, its question ends with one ``done`` or ``error``
(``shared.assistant.ending``): from the task, from its failure handler, from
the ``task_revoked`` signal when the worker discards it unrun, and from
``assistant.end_overdue`` (beat) when no worker ever got to it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
from celery import Task, shared_task, signals
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from elasticsearch import ConnectionError as ESConnectionError

from shared.assistant.ending import (
    EXPIRED,
    FAILED,
    REVOKED,
    SEARCH_UNAVAILABLE,
    STORAGE_UNAVAILABLE,
    TIMED_OUT,
    Failure,
    end_overdue,
    fail_question,
    question_of_task,
)
from shared.assistant.respond import run_answer
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.settings import get_settings
from shared.core.task_names import ASSISTANT_ANSWER, ASSISTANT_END_OVERDUE

log = logging.getLogger(__name__)

RETRIED = (ESConnectionError, redis.ConnectionError, redis.TimeoutError)

# The time limits are the task's own options, fixed when the worker imports it.
_limits = get_settings()


def failure_for(exc: BaseException) -> Failure:
    """The ``error`` a question ends with when its task fails with ``exc``."""
    if isinstance(exc, SoftTimeLimitExceeded | TimeLimitExceeded):
        return TIMED_OUT
    if isinstance(exc, ESConnectionError):
        return SEARCH_UNAVAILABLE  # through every retry
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError):
        return STORAGE_UNAVAILABLE  # written once Redis is back, else by the sweep
    return FAILED


def _question(task_id: str | None, kwargs: Any) -> tuple[str, str, int] | None:
    found = question_of_task(task_id or "")
    if found is None and isinstance(kwargs, dict) and "client_message_id" in kwargs:
        attempt = kwargs.get("attempt", 0)
        found = (
            str(kwargs.get("conversation_id")),
            str(kwargs["client_message_id"]),
            attempt if isinstance(attempt, int) else 0,
        )
    return found


def _fail(task_id: str | None, kwargs: Any, failure: Failure) -> None:
    question = _question(task_id, kwargs)
    if question is None:
        log.error("cannot tell which question task %s answered; the sweep will end it", task_id)
        return
    settings = get_settings()
    try:
        conversation_id, client_message_id, attempt = question
        fail_question(
            get_redis(settings), settings, conversation_id, client_message_id, failure, attempt
        )
    except redis.RedisError as exc:
        # Redis is what failed; the overdue sweep ends the question once it is back.
        log.warning("could not end question of task %s (%s): %r", task_id, failure.code, exc)


class AnswerTask(Task):  # type: ignore[misc]
    """Ends the question with an ``error`` when the task finally fails, so no client waits.

    Celery calls this for an exception once retries are spent, for the soft time
    limit, and (from the worker's main process) for the hard time limit.
    """

    def on_failure(self, exc, task_id, args, kwargs, einfo):  # type: ignore[no-untyped-def]
        _fail(task_id, kwargs, failure_for(exc))


@signals.task_revoked.connect
def end_discarded_answer(  # type: ignore[no-untyped-def]
    sender=None, request=None, terminated=False, signum=None, expired=False, **_
) -> None:
    """An answer task discarded unrun (expired, or revoked): its question ends here.

    The worker's main process sends this; Celery gives the request's id, not its
    arguments, which is why the task id names the question.
    """
    if getattr(sender, "name", None) != ASSISTANT_ANSWER or request is None:
        return
    _fail(getattr(request, "id", None), None, EXPIRED if expired else REVOKED)


@shared_task(
    name=ASSISTANT_ANSWER,
    base=AnswerTask,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=RETRIED,
    retry_backoff=0.2,
    retry_backoff_max=5,
    retry_jitter=True,
    max_retries=3,
    soft_time_limit=_limits.answer_soft_time_limit_seconds or None,
    time_limit=_limits.answer_time_limit_seconds,
)
def answer(
    *,
    user_id: str,
    conversation_id: str,
    client_message_id: str,
    attempt: int = 0,
    **_legacy: Any,
) -> str:
    """Search ``user_id``'s mail and append the answer's events to the conversation log.

    ``_legacy`` absorbs the ``question`` and ``window_days`` that messages queued
    before ids-only tasks still carry; the log is what is answered either way.
    """
    settings = get_settings()
    outcome = run_answer(
        get_elasticsearch(settings),
        get_redis(settings),
        settings,
        user_id=user_id,
        conversation_id=conversation_id,
        client_message_id=client_message_id,
        attempt=attempt,
    )
    return outcome.value


@shared_task(name=ASSISTANT_END_OVERDUE, ignore_result=True, time_limit=60)
def end_overdue_questions() -> int:
    """End questions past their deadline whose task never ran or died (beat runs this)."""
    settings = get_settings()
    ended = end_overdue(get_redis(settings), settings, time.time())
    if ended:
        log.warning("ended %d questions no worker answered in time", ended)
    return ended
