"""Answering one asked question: read it from the log, compute the answer once, emit it, end it.

The ``assistant.answer`` task carries ids only; the question's text and
window are read back from the conversation's log, where the web wrote them.

Computing and emitting are separate steps. The answer (search, citations,
text) is computed once and stored beside the log (``SET NX``); every run of
the task, a retry after a Redis blip or a redelivery after a crash, emits
from that stored draft. The events' dedup keys make the re-emitted parts
no-ops, and the pieces of one answer never mix with those of a second
search that found newer mail.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import redis
from elasticsearch import Elasticsearch

from shared.assistant.answer import answer_pieces
from shared.assistant.dedup_keys import answer_ref, event_key, terminal_key
from shared.assistant.ending import (
    QUESTION_MISSING,
    SEARCH_TIMED_OUT,
    emit,
    emit_all,
    end_question,
    fail_question,
)
from shared.assistant.llm import RulesOnly, phrase
from shared.assistant.pipeline import Answered, answer_question
from shared.core.events import EventType
from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.index.search import SearchTimedOut
from shared.realtime.conversations import owns_conversation
from shared.realtime.eventlog import EventLog, position_before

log = logging.getLogger(__name__)

DRAFT_TTL_SECONDS = 3600


class Outcome(StrEnum):
    """How one run of the task went (for the task's log line and tests)."""

    ANSWERED = "answered"
    CANCELLED = "cancelled"
    ALREADY_ENDED = "already_ended"
    FAILED = "failed"
    GONE = "gone"


@dataclass(frozen=True)
class AskedQuestion:
    conversation_id: str
    client_message_id: str
    question: str
    window_days: int
    attempt: int = 0
    question_event_id: str = ""  # where its conversation's earlier turns end


@dataclass(frozen=True)
class Draft:
    """An answer computed once: what every run of the task emits."""

    answer: str
    citations: list[dict[str, Any]]
    search: dict[str, Any]
    elasticsearch_seconds: float
    search_requests: int = 0
    assistant_seconds: float = 0.0  # the assistant's own time, the search server's excluded

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Draft:
        return cls(**json.loads(raw))


def load_question(
    r: redis.Redis,
    settings: Settings,
    conversation_id: str,
    client_message_id: str,
    attempt: int = 0,
) -> AskedQuestion | None:
    """The question event of ``client_message_id`` (this attempt), found by its dedup key."""
    events = EventLog(r, settings)
    stream = events.conversation_stream(conversation_id)
    question_key = event_key(client_message_id, EventType.QUESTION, attempt)
    entry_id = r.get(events.keys.dedup(stream, question_key))
    if not entry_id:
        return None
    read = events.read(stream, after=position_before(str(entry_id)), count=1)
    if not read.events or read.events[0].id != entry_id:
        return None
    data = read.events[0].data
    return AskedQuestion(
        conversation_id,
        client_message_id,
        str(data.get("q", "")),
        int(data["window_days"]),
        attempt,
        str(entry_id),
    )


def prepare_draft(
    es: Elasticsearch, r: redis.Redis, settings: Settings, owner_id: str, asked: AskedQuestion
) -> Draft:
    """The question's answer: the stored draft if a run computed one, else computed and stored.

    Two runs racing both search, but only the first stored draft is ever emitted.
    """
    keys = RedisKeys(settings.key_prefix)
    key = keys.answer_draft(
        keys.conversation_events(asked.conversation_id),
        answer_ref(asked.client_message_id, asked.attempt),
    )
    stored = r.get(key)
    if stored:
        return Draft.from_json(str(stored))
    answered = answer_question(
        es,
        r,
        settings,
        owner_id=owner_id,
        conversation_id=asked.conversation_id,
        question=asked.question,
        question_event_id=asked.question_event_id,
        window_days=asked.window_days,
    )
    draft = compose_draft(answered)
    r.set(key, draft.to_json(), nx=True, ex=DRAFT_TTL_SECONDS)
    return Draft.from_json(str(r.get(key) or draft.to_json()))


def compose_draft(answered: Answered) -> Draft:
    """The draft every run emits, from the pipeline's answer: search, citations, text.

    This is the one place where the answer's text is chosen; a phrasing step
    (an LLM writing from the same retrieved emails) would replace ``answer``
    here, never the citations or the search block.
    """
    return Draft(
        answered.answer,
        answered.citations,
        answered.search,
        answered.elasticsearch_seconds,
        answered.search_requests,
        answered.assistant_seconds,
    )


def _state(r: redis.Redis, settings: Settings, asked: AskedQuestion) -> Outcome | None:
    """``None`` while the question is still to be answered; else why not."""
    keys = RedisKeys(settings.key_prefix)
    stream = keys.conversation_events(asked.conversation_id)
    active, ended = r.mget(
        keys.active_question(asked.conversation_id),
        keys.dedup(stream, terminal_key(asked.client_message_id, asked.attempt)),
    )
    if ended:
        return Outcome.ALREADY_ENDED
    if active != asked.client_message_id:
        return Outcome.CANCELLED
    return None


def answer_parts(draft: Draft) -> list[tuple[str, str, dict[str, Any]]]:
    """The draft as ``(event type, part, data)``: search, hits, then the text in pieces."""
    parts: list[tuple[str, str, dict[str, Any]]] = [
        (EventType.SEARCH, "search", {"search": draft.search}),
        (EventType.HITS, "hits", {"citations": draft.citations}),
    ]
    for number, piece in enumerate(answer_pieces(draft.answer)):
        parts.append((EventType.DELTA, f"delta:{number}", {"text": piece, "index": number}))
    return parts


def run_answer(
    es: Elasticsearch,
    r: redis.Redis,
    settings: Settings,
    *,
    user_id: str,
    conversation_id: str,
    client_message_id: str,
    attempt: int = 0,
) -> Outcome:
    """Answer one question into its conversation's log, ending it with ``done`` or ``error``.

    A question superseded by a newer one (checked before the search and between
    events) ends with ``done {cancelled: true}``; one that another writer ended
    (the overdue sweep) gets nothing more. Errors that a retry may cure
    (connection errors) propagate for the task to retry; the task's failure
    handler ends the question when it gives up.
    """
    if not owns_conversation(r, settings, user_id, conversation_id):
        return Outcome.GONE  # deleted meanwhile: writing would bring its log back
    ids = (r, settings, conversation_id, client_message_id)
    asked = load_question(*ids, attempt)
    if asked is None:
        fail_question(*ids, QUESTION_MISSING, attempt)
        return Outcome.FAILED
    state = _state(r, settings, asked)
    if state is None:
        try:
            draft = prepare_draft(es, r, settings, user_id, asked)
        except SearchTimedOut:
            fail_question(*ids, SEARCH_TIMED_OUT, attempt)
            return Outcome.FAILED
        phrasing = phrase(r, settings, asked, draft)  # the optional language model (llm.py)
        if isinstance(phrasing, RulesOnly):
            # Every part is known: one pipelined batch (the cancel check before it), since
            # a round trip per event was most of the assistant's own time.
            emit_all(*ids, answer_parts(draft), attempt)
        else:  # a model streams: check for a newer question between its pieces
            for event_type, part, data in phrasing.parts(answer_parts(draft)):
                state = _state(r, settings, asked)
                if state is not None:
                    break
                emit(*ids, event_type, part, data, attempt)
    if state is Outcome.ALREADY_ENDED:
        return state
    if state is Outcome.CANCELLED:
        cancelled = {"cancelled": True, "answer": "", "citations": [], "search": {}}
        end_question(*ids, EventType.DONE, cancelled, attempt)
        return state
    end_question(*ids, EventType.DONE, phrasing.done_data(), attempt)
    return Outcome.ANSWERED
