"""Assistant tasks: answer a question from the person's own mail, as a stream of events."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery import Task, shared_task
from elasticsearch import ConnectionError as ESConnectionError

from shared.assistant.answer import AnswerCancelled, stream_answer
from shared.assistant.asking import event_key, is_active
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.events import EventType
from shared.core.settings import get_settings
from shared.core.task_names import ASSISTANT_ANSWER
from shared.realtime.delivery import Delivery, deliver

log = logging.getLogger(__name__)


def _emitter(conversation_id: str, client_message_id: str):  # type: ignore[no-untyped-def]
    settings = get_settings()
    r = get_redis(settings)

    def emit(event_type: str, part: str, data: dict[str, Any]) -> None:
        data = {**data, "client_message_id": client_message_id}
        key = event_key(client_message_id, part)
        deliver(r, settings, Delivery("conversation", conversation_id, event_type, data, key))

    return emit


class AnswerTask(Task):  # type: ignore[misc]
    """Ends the answer with an ``error`` event when the task finally fails, so no client waits forever."""

    def on_failure(self, exc, task_id, args, kwargs, einfo):  # type: ignore[no-untyped-def]
        emit = _emitter(kwargs["conversation_id"], kwargs["client_message_id"])
        if isinstance(exc, ESConnectionError):
            # Search was down through every retry: say so, so clients retry later (503).
            error = {
                "code": "search_unavailable",
                "message": "The search engine is unreachable; try again.",
                "retryable": True,
            }
        else:
            error = {"code": "assistant_failed", "message": "The assistant failed to answer."}
        emit(EventType.ERROR, "error", error)


@shared_task(
    name=ASSISTANT_ANSWER,
    base=AnswerTask,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(ESConnectionError, redis.ConnectionError, redis.TimeoutError),
    retry_backoff=0.2,
    retry_backoff_max=5,
    retry_jitter=True,
    max_retries=3,
    soft_time_limit=20,
    time_limit=30,
)
def answer(
    *, user_id: str, conversation_id: str, client_message_id: str, question: str, window_days: int
) -> None:
    """Search ``user_id``'s mail and append the answer's events to the conversation log.

    Every event has a dedup key derived from the client message id, so a retry
    or a redelivery after a crash continues the same answer without doubling it.
    """
    settings = get_settings()
    r = get_redis(settings)
    emit = _emitter(conversation_id, client_message_id)
    try:
        result = stream_answer(
            get_elasticsearch(settings),
            settings,
            owner_id=user_id,
            question=question,
            window_days=window_days,
            emit=emit,
            still_wanted=lambda: is_active(r, settings, conversation_id, client_message_id),
        )
    except AnswerCancelled:
        emit(
            EventType.DONE, "done", {"cancelled": True, "answer": "", "citations": [], "search": {}}
        )
        return
    emit(EventType.DONE, "done", {"cancelled": False, **result})
