"""``make bench`` (assistant): the assistant's own time per question, and its search requests.

Every question of the eval (``bench.eval.questions``, over the 2,000-email demo
mailbox) is asked in-process, the way the worker answers it: the question is
written to its conversation's log, ``run_answer`` reads it, understands it,
searches, composes and emits every event to Redis. Per question the answer
records the time its search requests took and how many it made; the
assistant's own time is the whole run minus that (parsing, query building,
composing, emitting), which is what the issue bounds (p95 <= 20 ms), whatever
the search server's speed.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import redis

from bench.eval.facts import mailbox_facts
from bench.eval.questions import build_questions
from bench.results import Figure, report
from bench.stack import local_servers
from devtools.demo_mailbox import DEFAULT_SEED, write_mbox
from shared.assistant.asking import start_question
from shared.assistant.respond import Draft, run_answer
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.events import EventType
from shared.core.settings import Settings
from shared.identity.users import create_user
from shared.index.writer import import_mbox
from shared.realtime.eventlog import READ_PAGE, EventLog

EMAIL, PASSWORD = "bench-assistant@example.com", "bench-assistant-password"
COUNT, DAYS = 2000, 89


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


def finished_draft(
    r: redis.Redis, settings: Settings, conversation_id: str, client_message_id: str
) -> Draft:
    """The answer as its ``done`` event carries it (the stored draft is gone once it ended)."""
    events = EventLog(r, settings)
    read = events.read(events.conversation_stream(conversation_id), count=READ_PAGE)
    for event in reversed(read.events):
        if (
            event.type == EventType.DONE
            and event.data.get("client_message_id") == client_message_id
        ):
            fields = {k: event.data[k] for k in Draft.__dataclass_fields__ if k in event.data}
            return Draft(**fields)
        if (
            event.type == EventType.ERROR
            and event.data.get("client_message_id") == client_message_id
        ):
            raise RuntimeError(f"question {client_message_id} ended with error {event.data}")
    raise RuntimeError(f"question {client_message_id} did not end")


def run(settings: Settings, workdir: Path) -> list[Figure]:
    r, es = get_redis(settings), get_elasticsearch(settings)
    today = datetime.now(UTC).date()
    user = create_user(r, settings, EMAIL, PASSWORD)
    mbox = workdir / "assistant-demo.mbox"
    write_mbox(mbox, owner_address=EMAIL, today=today, count=COUNT, days=DAYS)
    import_mbox(es, settings, user.id, mbox, refresh=True)
    facts = mailbox_facts(user.id, EMAIL, today, COUNT, DAYS, DEFAULT_SEED)
    questions = build_questions(facts, datetime.now(UTC))
    own_ms: list[float] = []
    es_ms: list[float] = []
    requests: list[int] = []
    conversations: list[str] = []
    for number, question in enumerate(questions):
        conversation = (
            conversations[question.follow_up_of] if question.follow_up_of is not None else None
        )
        started = start_question(
            r,
            settings,
            user_id=user.id,
            question=question.text,
            window_days=30,
            conversation_id=conversation,
            client_message_id=f"bench-{number}",
        )
        conversations.append(started.conversation_id)
        began = time.perf_counter()
        run_answer(
            es,
            r,
            settings,
            user_id=user.id,
            conversation_id=started.conversation_id,
            client_message_id=started.client_message_id,
        )
        wall = time.perf_counter() - began
        draft = finished_draft(r, settings, started.conversation_id, started.client_message_id)
        own_ms.append(1000 * max(0.0, wall - draft.elasticsearch_seconds))
        es_ms.append(1000 * draft.elasticsearch_seconds)
        requests.append(draft.search_requests)
    detail = {"questions": len(questions), "mailbox": COUNT}
    return [
        Figure("assistant.own_ms_p50", round(percentile(own_ms, 0.5), 2), "ms", detail=detail),
        Figure(
            "assistant.own_ms_p95",
            round(percentile(own_ms, 0.95), 2),
            "ms",
            peer=round(percentile(es_ms, 0.95), 1),
            peer_name="Elasticsearch's own time",
            aim="<= 20 ms",
            detail=detail,
        ),  # fmt: skip
        Figure("assistant.es_requests_max", max(requests), "requests", aim="<= 3"),
        Figure(
            "assistant.es_requests_mean",
            round(statistics.mean(requests), 2),
            "requests",
            aim="<= 3",
        ),  # fmt: skip
    ]


def main() -> int:
    with local_servers("mailchat-bench-assistant:") as (settings, workdir):
        report(run(settings, workdir), Path(tempfile.gettempdir()) / "bench-assistant.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
