"""Asking from any transport: record the question, enqueue its answer, follow its events."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from shared.assistant.answer import MAX_WINDOW_DAYS, MIN_WINDOW_DAYS
from shared.assistant.asking import (
    StartedQuestion,
    enqueue_answer,
    is_terminal_for,
    start_question,
)
from shared.core import metrics
from shared.core.events import EventType
from shared.core.ratelimit import for_settings
from shared.identity.users import User
from shared.realtime.conversations import ConversationNotFound
from shared.realtime.eventlog import Event
from web.errors import ApiError, queue_errors
from web.extensions import services
from web.realtime.shutdown import shutting_down
from web.validation import int_in_range, optional_id

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
DEFAULT_WINDOW_DAYS = 30


def begin_question(
    user: User,
    question: str,
    window_days: int,
    conversation_id: str | None,
    client_message_id: str | None,
) -> StartedQuestion:
    """Append the user's turn and enqueue ``assistant.answer`` (unless already answered)."""
    svc = services()
    try:
        started = start_question(
            svc.redis,
            svc.settings,
            user_id=user.id,
            question=question,
            window_days=window_days,
            conversation_id=conversation_id,
            client_message_id=client_message_id,
        )
    except ConversationNotFound as exc:
        raise ApiError(
            404, "conversation_not_found", "No such conversation.", field="conversation_id"
        ) from exc
    if started.needs_answer:
        with queue_errors():
            enqueue_answer(svc.celery.send_task, svc.settings, user.id, started)
    return started


def ask(
    user: User,
    fields: dict[str, Any],
    question: str,
    *,
    client_message_id_required: bool = False,
) -> StartedQuestion:
    """Validate what every transport's ask shares (window, ids), then begin the question.

    Every transport asks through here, so the per-person ask limit is one budget
    for POST, SSE and WebSocket together (429 + Retry-After, or an error frame).
    """
    window_days = int_in_range(
        fields, "window_days", MIN_WINDOW_DAYS, MAX_WINDOW_DAYS, DEFAULT_WINDOW_DAYS
    )
    client_message_id = optional_id(fields, "client_message_id")
    if client_message_id_required and client_message_id is None:
        raise ApiError(
            400, "invalid_field", "'client_message_id' is required.", field="client_message_id"
        )
    settings = services().settings
    decision = for_settings(settings).spend("ask", settings.ask_rate_limit, user.id)
    if not decision.allowed:
        raise ApiError(
            429,
            "rate_limited",
            "Too many questions; wait a little before asking again.",
            retry_after=decision.retry_after_seconds,
        )
    return begin_question(
        user, question, window_days, optional_id(fields, "conversation_id"), client_message_id
    )


def follow(
    stream: str,
    after: str,
    *,
    until_answered: str | None = None,
    idle_seconds: float,
    deadline: float | None = None,
) -> Iterator[Event | None]:
    """Yield the stream's events after ``after`` as they arrive.

    Yields ``None`` after each idle interval (time for a keep-alive) and stops
    after the terminal event of ``until_answered``, at ``deadline``
    (monotonic seconds) or when this process starts shutting down.
    """
    import time

    svc = services()
    with svc.relay.listening([stream]) as waiter:
        while True:
            page = svc.relay.read_after(stream, after)
            for event in page:
                yield event
                after = event.id
                if until_answered and is_terminal_for(event, until_answered):
                    return
            if shutting_down.is_set():
                return
            if page:
                continue  # maybe more behind this page: only an empty read means "wait"
            wait = idle_seconds
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            if not waiter.wait(wait):
                yield None


def record_answer_metrics(event: Event) -> None:
    """Count a finished answer's search once, in the process that asked for it."""
    if event.type != EventType.DONE or event.data.get("cancelled"):
        return
    search = event.data.get("search") or {}
    if "window_days" in search:
        metrics.record_assistant_search(
            int(search["window_days"]),
            int(search.get("total_hits", 0)),
            float(event.data.get("elasticsearch_seconds", 0.0)),
        )
        own = event.data.get("assistant_seconds")
        es_seconds = float(event.data.get("elasticsearch_seconds", 0.0))
        metrics.record_assistant_answer(search, None if own is None else float(own) + es_seconds)
