"""``POST /api/chat``: ask, and get the whole answer as one JSON object.

The same path as streaming: the question goes into the conversation's log,
a worker appends the answer's events, and this view reads the log until the
answer's ``done``. No worker within the timeout is a 503 with Retry-After.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Blueprint, jsonify

from shared.assistant.asking import chat_response
from shared.core import metrics
from shared.core.events import EventType
from shared.identity.tickets import issue_ticket
from shared.realtime.eventlog import EventLog, position_before
from web.api.auth import current_user
from web.errors import ApiError
from web.extensions import services
from web.realtime.asking import RETRY_AFTER_SECONDS, ask, follow, record_answer_metrics
from web.validation import json_body, question_from

log = logging.getLogger(__name__)

bp = Blueprint("chat", __name__, url_prefix="/api")

# Error codes a worker writes when a server was down, not when the answer itself failed.
RETRYABLE_CODES = frozenset({"search_unavailable", "storage_unavailable"})


@bp.post("/chat")
def chat() -> Any:
    svc = services()
    body = json_body()
    started = ask(current_user(), body, question_from(body, svc.settings.max_question_chars))
    stream = EventLog(svc.redis, svc.settings).conversation_stream(started.conversation_id)
    deadline = time.monotonic() + svc.settings.chat_timeout_seconds
    before_question = position_before(started.question_event_id)
    for event in follow(
        stream,
        before_question,
        until_answered=started.client_message_id,
        idle_seconds=svc.settings.chat_timeout_seconds,
        deadline=deadline,
    ):
        if event is None or event.data.get("client_message_id") != started.client_message_id:
            continue
        if event.type == EventType.ERROR:
            metrics.CHAT_REQUESTS.labels(outcome="failed").inc()
            if event.data.get("retryable") or event.data.get("code") in RETRYABLE_CODES:
                # A server the answer needs is down: the client may simply retry later.
                raise ApiError(
                    503,
                    str(event.data.get("code") or "assistant_unavailable"),
                    str(event.data.get("message") or "The assistant is unavailable; try again."),
                    retry_after=RETRY_AFTER_SECONDS,
                )
            raise ApiError(502, "assistant_failed", "The assistant failed to answer; try again.")
        if event.type == EventType.DONE:
            record_answer_metrics(event)
            metrics.CHAT_REQUESTS.labels(outcome="answered").inc()
            return jsonify(chat_response(started.conversation_id, event))
    metrics.CHAT_REQUESTS.labels(outcome="timeout").inc()
    raise ApiError(
        503,
        "assistant_unavailable",
        "No assistant worker answered in time; try again.",
        retry_after=RETRY_AFTER_SECONDS,
    )


@bp.post("/chat/ticket")
def chat_ticket() -> Any:
    """A 60-second, single-use ticket for ``EventSource`` URLs (``?ticket=``)."""
    svc = services()
    return jsonify(
        {"ticket": issue_ticket(svc.redis, svc.settings, current_user()), "expires_in": 60}
    )
