"""``POST /api/chat``: ask a question, wait for the worker's grounded answer.

The view validates, claims the conversation, enqueues ``assistant.answer``
on the ``search`` queue by name and waits for the result; the search itself
runs on a worker. No worker within the timeout is a 503 with Retry-After.
"""

from __future__ import annotations

import logging
from typing import Any

from celery.exceptions import TimeoutError as CeleryTimeout
from flask import Blueprint, jsonify
from kombu.exceptions import OperationalError

from shared import metrics
from shared.assistant import MAX_WINDOW_DAYS, MIN_WINDOW_DAYS
from shared.conversations import ConversationNotFound, claim_conversation
from shared.task_names import ASSISTANT_ANSWER
from web.auth import current_user
from web.errors import ApiError
from web.extensions import services
from web.validation import int_in_range, json_body, optional_id, question_from

log = logging.getLogger(__name__)

bp = Blueprint("chat", __name__, url_prefix="/api")

DEFAULT_WINDOW_DAYS = 30
RETRY_AFTER_SECONDS = 5


@bp.post("/chat")
def chat() -> Any:
    svc = services()
    body = json_body()
    question = question_from(body, svc.settings.max_question_chars)
    window_days = int_in_range(
        body, "window_days", MIN_WINDOW_DAYS, MAX_WINDOW_DAYS, DEFAULT_WINDOW_DAYS
    )
    requested_conversation = optional_id(body, "conversation_id")
    optional_id(body, "client_message_id")
    user = current_user()
    try:
        conversation_id = claim_conversation(
            svc.redis, svc.settings, user.id, requested_conversation
        )
    except ConversationNotFound as exc:
        raise ApiError(
            404, "conversation_not_found", "No such conversation.", field="conversation_id"
        ) from exc

    result = _ask_worker(user.id, question, window_days)
    search = result["search"]
    metrics.record_assistant_search(
        search["window_days"], search["total_hits"], result.get("elasticsearch_seconds", 0.0)
    )
    metrics.CHAT_REQUESTS.labels(outcome="answered").inc()
    return jsonify(
        {
            "conversation_id": conversation_id,
            "answer": result["answer"],
            "citations": result["citations"],
            "search": search,
        }
    )


def _ask_worker(user_id: str, question: str, window_days: int) -> dict[str, Any]:
    """Enqueue ``assistant.answer`` and wait for it; queue trouble becomes a 503, a crash a 502."""
    svc = services()
    timeout = svc.settings.chat_timeout_seconds
    try:
        pending = svc.celery.send_task(
            ASSISTANT_ANSWER,
            args=[user_id, question, window_days],
            expires=timeout,  # a question nobody picked up in time is dropped, not answered late
            ignore_result=False,
        )
    except OperationalError as exc:
        metrics.CHAT_REQUESTS.labels(outcome="broker_down").inc()
        raise ApiError(
            503,
            "queue_unavailable",
            "The task queue is unreachable; try again.",
            retry_after=RETRY_AFTER_SECONDS,
        ) from exc
    try:
        answer: dict[str, Any] = pending.get(timeout=timeout)
        return answer
    except CeleryTimeout as exc:
        metrics.CHAT_REQUESTS.labels(outcome="timeout").inc()
        raise ApiError(
            503,
            "assistant_unavailable",
            "No assistant worker answered in time; try again.",
            retry_after=RETRY_AFTER_SECONDS,
        ) from exc
    except Exception as exc:
        metrics.CHAT_REQUESTS.labels(outcome="failed").inc()
        log.error("assistant task %s failed: %r", pending.id, exc)
        raise ApiError(
            502, "assistant_failed", "The assistant failed to answer; try again."
        ) from exc
    finally:
        pending.forget()
