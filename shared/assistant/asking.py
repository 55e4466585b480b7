"""Starting, cancelling and finishing a question, whatever the transport.

``POST /api/chat``, the SSE stream and the WebSocket all ask the same way:
claim the conversation, append the user's turn to its log (idempotent on the
client message id), mark it the conversation's active question (which
cancels any older one still running), open it (give it the deadline by which
it must have ended, see ``shared.assistant.ending``), and tell the caller
whether an answer must be enqueued. The worker writes its events with dedup
keys derived from the same client message id, so a retried request or task
never doubles.

The task is sent with ids only: the question's text is already in the
conversation's log, and task arguments are visible in Flower (and in the
broker) to anyone on the host.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

import redis

from shared.assistant.dedup_keys import event_key
from shared.assistant.ending import answer_task_id, end_of, open_question
from shared.core.events import TERMINAL_TYPES, EventType
from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.core.task_names import ASSISTANT_ANSWER, SendTask
from shared.realtime.conversations import claim_conversation, new_conversation_id
from shared.realtime.eventlog import DEDUP_TTL_SECONDS, Appended, Event, EventLog

log = logging.getLogger(__name__)

ACTIVE_TTL_SECONDS = 3600
CLIENT_MESSAGE_TTL_SECONDS = DEDUP_TTL_SECONDS  # as long as the question's own dedup key


@dataclass(frozen=True)
class StartedQuestion:
    conversation_id: str
    client_message_id: str
    question_event_id: str
    epoch: str
    needs_answer: bool
    attempt: int = 0  # > 0: asked again after a retryable error


def new_client_message_id() -> str:
    return "m_" + secrets.token_hex(8)


def start_question(
    r: redis.Redis,
    settings: Settings,
    *,
    user_id: str,
    question: str,
    window_days: int,
    conversation_id: str | None,
    client_message_id: str | None,
) -> StartedQuestion:
    """Record the user's turn and make it the conversation's active question.

    Raises ``ConversationNotFound`` for somebody else's conversation. A repeat
    of an already-answered client message id needs no new answer.
    """
    keys = RedisKeys(settings.key_prefix)
    if conversation_id is None and client_message_id is not None:
        # A repeat of this client message (a retry after a lost response) must land in the
        # conversation of its first try: the first to set the key decides, atomically.
        key = keys.client_message_conversation(user_id, client_message_id)
        fresh = new_conversation_id()
        if r.set(key, fresh, nx=True, ex=CLIENT_MESSAGE_TTL_SECONDS):
            conversation_id = fresh
        else:
            conversation_id = str(r.get(key) or fresh)
    conversation_id = claim_conversation(r, settings, user_id, conversation_id)
    client_message_id = client_message_id or new_client_message_id()
    events = EventLog(r, settings)
    stream = events.conversation_stream(conversation_id)
    attempt = int(r.get(keys.answer_attempt(stream, client_message_id)) or 0)

    def append_question() -> Appended:
        data: dict[str, Any] = {
            "client_message_id": client_message_id,
            "q": question,
            "window_days": window_days,
        }
        if attempt:
            data["attempt"] = attempt
        return events.append(
            stream,
            EventType.QUESTION,
            data,
            dedup_key=event_key(client_message_id, EventType.QUESTION, attempt),
            conversation_id=conversation_id,
        )

    appended = append_question()
    end = end_of(r, settings, conversation_id, client_message_id, attempt)
    if end is not None and end.type == EventType.ERROR and end.data.get("retryable"):
        # Sent again after an error worth retrying: ask again, as a new attempt whose
        # question event readers follow from (the ended attempt stays in the log).
        attempt += 1
        r.set(keys.answer_attempt(stream, client_message_id), attempt, ex=DEDUP_TTL_SECONDS)
        appended, end = append_question(), None
    finished = end is not None
    if not finished:
        # Two independent writes, one round trip (not a transaction: each is idempotent).
        pipe = r.pipeline(transaction=False)
        pipe.set(keys.active_question(conversation_id), client_message_id, ex=ACTIVE_TTL_SECONDS)
        open_question(pipe, settings, conversation_id, client_message_id, time.time(), attempt)
        pipe.execute()
    return StartedQuestion(
        conversation_id,
        client_message_id,
        appended.id,
        appended.epoch,
        needs_answer=not finished,
        attempt=attempt,
    )


def enqueue_answer(
    send_task: SendTask, settings: Settings, user_id: str, started: StartedQuestion
) -> None:
    """Send ``assistant.answer`` for a started question: ids only, named after the question.

    A question nobody picked up within ``chat_timeout_seconds`` expires (it is
    dropped, not answered late, and the worker ends it with ``assistant_expired``).
    """
    send_task(
        ASSISTANT_ANSWER,
        kwargs={
            "user_id": user_id,
            "conversation_id": started.conversation_id,
            "client_message_id": started.client_message_id,
            "attempt": started.attempt,
        },
        task_id=answer_task_id(started.conversation_id, started.client_message_id, started.attempt),
        expires=settings.chat_timeout_seconds,
    )


def is_active(
    r: redis.Redis, settings: Settings, conversation_id: str, client_message_id: str
) -> bool:
    """Whether this question is still the one to answer (the worker asks between steps)."""
    active = r.get(RedisKeys(settings.key_prefix).active_question(conversation_id))
    return active == client_message_id


def is_terminal_for(event: Event, client_message_id: str) -> bool:
    """True for the ``done``/``error`` event that ends this question's answer."""
    return event.type in TERMINAL_TYPES and event.data.get("client_message_id") == client_message_id


def chat_response(conversation_id: str, done: Event) -> dict[str, Any]:
    """The plain JSON chat contract, from an answer's ``done`` event: what the streams'
    ``done`` says, including who phrased the answer when a language model was asked."""
    response = {
        "conversation_id": conversation_id,
        "answer": done.data.get("answer", ""),
        "citations": done.data.get("citations", []),
        "search": done.data.get("search", {}),
    }
    if "phrasing" in done.data:
        response["phrasing"] = done.data["phrasing"]
    return response
