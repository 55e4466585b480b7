"""Every question ends with exactly one ``done`` or ``error``, whatever happens to its task.

A client following a conversation (SSE, WebSocket, a replay) waits for the
question's terminal event; a question without one is a spinner forever. So
there are three writers of an end, for the three ways a task can go:

- the task itself: ``done`` (answered or cancelled), or ``error`` from its
  failure handler (an exception, its retries spent, its soft or hard time
  limit, which Celery reports in the worker's main process);
- the worker, for a task it discards without running it: expired (nobody
  took it in time, or it was redelivered after its expiry) or revoked. No
  task code runs then, only Celery's ``task_revoked`` signal, which finds the
  question from the task id (``answer_task_id``);
- the overdue sweep (beat, every ``answer_sweep_seconds``), for a task that
  never reached a worker or died with one: every question still open past its
  deadline, after which its task can no longer be running
  (``Settings.answer_deadline_seconds``).

All three write through ``end_question`` under one dedup key per question, so
the first writer ends it and the others are no-ops: a question never ends
twice, nor with both ``done`` and ``error``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

import redis

from shared.assistant.dedup_keys import answer_ref, event_key, terminal_key
from shared.core.events import EventType
from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.core.task_names import ASSISTANT_ANSWER
from shared.realtime.delivery import Delivery, deliver
from shared.realtime.eventlog import Appended, Event, EventLog, position_before

log = logging.getLogger(__name__)

SWEEP_BATCH = 500


@dataclass(frozen=True)
class Failure:
    """Why a question ended without an answer: the ``error`` event's data."""

    code: str
    message: str
    retryable: bool

    def as_data(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, "retryable": self.retryable}


FAILED = Failure("assistant_failed", "The assistant failed to answer.", retryable=False)
SEARCH_UNAVAILABLE = Failure(
    "search_unavailable", "The search engine is unreachable; try again.", retryable=True
)
STORAGE_UNAVAILABLE = Failure(
    "storage_unavailable", "The conversation store is unreachable; try again.", retryable=True
)
TIMED_OUT = Failure(
    "assistant_timeout", "The assistant took too long to answer; try again.", retryable=True
)
SEARCH_TIMED_OUT = Failure(
    "search_timeout",
    "The search took too long; try again, perhaps with fewer words.",
    retryable=True,
)
EXPIRED = Failure(
    "assistant_expired",
    "No assistant worker took the question in time; try again.",
    retryable=True,
)
REVOKED = Failure(
    "assistant_revoked",
    "The question was withdrawn before it was answered; try again.",
    retryable=True,
)
UNAVAILABLE = Failure(
    "assistant_unavailable", "No assistant worker answered in time; try again.", retryable=True
)
QUESTION_MISSING = Failure(
    "question_missing", "The question is no longer in the conversation.", retryable=False
)


def answer_task_id(conversation_id: str, client_message_id: str, attempt: int = 0) -> str:
    """The ``assistant.answer`` task id of a question (ids hold no ':', so it parses back).

    Celery tells a revoked or expired task's signal handler its id but not its
    arguments; naming the task after its question lets that handler end it.
    """
    return f"{ASSISTANT_ANSWER}:{conversation_id}:{client_message_id}:{attempt}"


def question_of_task(task_id: str) -> tuple[str, str, int] | None:
    """``(conversation_id, client_message_id, attempt)`` from ``answer_task_id``, else ``None``."""
    parts = task_id.split(":")
    if len(parts) not in (3, 4) or parts[0] != ASSISTANT_ANSWER or not all(parts[1:3]):
        return None
    attempt = parts[3] if len(parts) == 4 else "0"
    return (parts[1], parts[2], int(attempt)) if attempt.isdigit() else None


def open_question(
    r: redis.Redis,
    settings: Settings,
    conversation_id: str,
    client_message_id: str,
    now: float,
    attempt: int = 0,
) -> None:
    """Give a question its deadline; a re-sent question (re-enqueued) gets the later one."""
    deadline = now + settings.answer_deadline_seconds
    member = RedisKeys.open_question_member(conversation_id, client_message_id, attempt)
    r.zadd(RedisKeys(settings.key_prefix).open_questions(), {member: deadline}, gt=True)


def end_of(
    r: redis.Redis,
    settings: Settings,
    conversation_id: str,
    client_message_id: str,
    attempt: int = 0,
) -> Event | None:
    """The attempt's ``done`` or ``error`` event, if it has ended.

    Attempt 0 also counts answers ended before the one terminal key (``:done``/``:error``).
    """
    events = EventLog(r, settings)
    stream = events.conversation_stream(conversation_id)
    parts = [terminal_key(client_message_id, attempt)]
    if attempt == 0:
        parts += [event_key(client_message_id, t) for t in (EventType.DONE, EventType.ERROR)]
    # One round trip for every key: each ask reads them, and under load every round trip
    # of a request waits its turn in the web process's event loop.
    for entry_id in r.mget([events.keys.dedup(stream, part) for part in parts]):
        if entry_id:
            read = events.read(stream, after=position_before(str(entry_id)), count=1)
            if read.events and read.events[0].id == entry_id:
                return read.events[0]
            return Event(str(entry_id), EventType.DONE, conversation_id, {})  # trimmed away
    return None


def emit(
    r: redis.Redis,
    settings: Settings,
    conversation_id: str,
    client_message_id: str,
    event_type: str,
    part: str,
    data: dict[str, Any],
    attempt: int = 0,
) -> Appended:
    """Append one event of the answer, once per ``part``."""
    delivery = Delivery(
        "conversation",
        conversation_id,
        event_type,
        {**data, "client_message_id": client_message_id},
        event_key(client_message_id, part, attempt),
    )
    return deliver(r, settings, delivery)


def emit_all(
    r: redis.Redis,
    settings: Settings,
    conversation_id: str,
    client_message_id: str,
    parts: list[tuple[str, str, dict[str, Any]]],
    attempt: int = 0,
) -> list[Appended]:
    """Append ``(event type, part, data)`` events of the answer in one pipelined batch.

    The same events, dedup keys and order as calling ``emit`` for each part.
    """
    events = EventLog(r, settings)
    return events.append_all(
        events.conversation_stream(conversation_id),
        [
            (event_type, {**data, "client_message_id": client_message_id},
             event_key(client_message_id, part, attempt))
            for event_type, part, data in parts
        ],
        conversation_id,
    )  # fmt: skip


def end_question(
    r: redis.Redis,
    settings: Settings,
    conversation_id: str,
    client_message_id: str,
    event_type: str,
    data: dict[str, Any],
    attempt: int = 0,
) -> Appended:
    """Write the question's ``done`` or ``error``, unless it has ended already; close it.

    ``Appended.written`` is False when another writer ended it first.
    """
    if event_type not in (EventType.DONE, EventType.ERROR):
        raise ValueError(f"{event_type!r} does not end a question")
    delivery = Delivery(
        "conversation",
        conversation_id,
        event_type,
        {**data, "client_message_id": client_message_id},
        terminal_key(client_message_id, attempt),
    )
    appended = deliver(r, settings, delivery)
    keys = RedisKeys(settings.key_prefix)
    stream = keys.conversation_events(conversation_id)
    pipe = r.pipeline(transaction=False)
    pipe.zrem(
        keys.open_questions(),
        RedisKeys.open_question_member(conversation_id, client_message_id, attempt),
    )
    pipe.delete(keys.answer_draft(stream, answer_ref(client_message_id, attempt)))
    pipe.execute()
    return appended


def fail_question(
    r: redis.Redis,
    settings: Settings,
    conversation_id: str,
    client_message_id: str,
    failure: Failure,
    attempt: int = 0,
) -> Appended:
    """End the question with ``error {code, message, retryable}``."""
    appended = end_question(
        r,
        settings,
        conversation_id,
        client_message_id,
        EventType.ERROR,
        failure.as_data(),
        attempt,
    )
    if appended.written:
        log.warning("question %s ended with %s", client_message_id, failure.code)
    return appended


def end_overdue(r: redis.Redis, settings: Settings, now: float) -> int:
    """End every open question past its deadline with ``assistant_unavailable``; how many.

    A question whose conversation was deleted meanwhile is only forgotten: writing
    its end would bring a deleted log back.
    """
    keys = RedisKeys(settings.key_prefix)
    overdue = cast(
        list[str], r.zrangebyscore(keys.open_questions(), 0, now, start=0, num=SWEEP_BATCH)
    )
    ended = 0
    for member in overdue:
        conversation_id, client_message_id, *rest = member.split(":")
        attempt = int(rest[0]) if rest and rest[0].isdigit() else 0
        if not r.exists(keys.conversation_owner(conversation_id)):
            r.zrem(keys.open_questions(), member)
            continue
        appended = fail_question(
            r, settings, conversation_id, client_message_id, UNAVAILABLE, attempt
        )
        ended += int(appended.written)
    return ended
