"""Follow-ups read the conversation's earlier turns from its event log and refine them."""

from __future__ import annotations

import secrets
from datetime import date
from pathlib import Path

import pytest

from devtools.demo_mailbox import write_mbox
from shared.assistant.asking import start_question
from shared.assistant.respond import Outcome, run_answer
from shared.core import metrics
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.events import EventType
from shared.index.writer import import_mbox
from shared.realtime.eventlog import EventLog

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def owner(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    owner_id = "u_follow_" + secrets.token_hex(4)
    folder = Path(tmp_path_factory.mktemp("follow"))
    write_mbox(
        folder / "m.mbox", owner_address="f@example.com", today=date.today(), count=300, days=89
    )
    import_mbox(get_elasticsearch(settings), settings, owner_id, folder / "m.mbox", refresh=True)
    return owner_id


def _ask(settings, owner: str, question: str, conversation: str | None = None):  # type: ignore[no-untyped-def]
    r = get_redis(settings)
    started = start_question(
        r, settings, user_id=owner, question=question, window_days=30,
        conversation_id=conversation, client_message_id=None,
    )  # fmt: skip
    outcome = run_answer(
        get_elasticsearch(settings), r, settings, user_id=owner,
        conversation_id=started.conversation_id, client_message_id=started.client_message_id,
    )  # fmt: skip
    assert outcome is Outcome.ANSWERED
    events = EventLog(r, settings)
    log = events.read(events.conversation_stream(started.conversation_id)).events
    done = [e for e in log if e.type == EventType.DONE][-1]
    searched = [e for e in log if e.type == EventType.SEARCH][-1]
    assert searched.data["search"] == done.data["search"]  # the page shows what was searched
    return started.conversation_id, done.data


def test_and_from_a_sender_keeps_the_previous_category_and_window(settings, owner) -> None:
    conversation, first = _ask(settings, owner, "interviews in the last 90 days")
    assert first["search"]["follow_up"] is False
    _, refined = _ask(settings, owner, "and from Northwind?", conversation)
    search = refined["search"]
    assert search["follow_up"] is True
    assert search["filters"]["category"] == "interview"
    assert search["filters"]["from"] == ["Northwind"]
    assert search["window_days"] == 90
    assert all("northwind" in c["from"].lower() for c in refined["citations"])
    assert (
        len(refined["citations"]) <= len(first["citations"])
        or search["total_hits"] <= first["search"]["total_hits"]
    )


def test_only_the_ones_with_attachments_adds_the_filter(settings, owner) -> None:
    conversation, first = _ask(settings, owner, "interviews in the last 90 days")
    _, refined = _ask(settings, owner, "only the ones with attachments", conversation)
    assert refined["search"]["filters"]["attachment"] is True
    assert refined["search"]["filters"]["category"] == "interview"
    assert refined["search"]["total_hits"] < first["search"]["total_hits"]


def test_older_than_that_moves_the_window_before_the_previous_one(settings, owner) -> None:
    conversation, first = _ask(settings, owner, "interviews in the last 30 days")
    _, older = _ask(settings, owner, "older than that", conversation)
    assert older["search"]["filters"]["window"].startswith("before ")
    recent = {c["id"] for c in first["citations"]}
    assert older["citations"] and not recent & {c["id"] for c in older["citations"]}


def test_a_follow_up_in_a_new_conversation_is_just_a_question(settings, owner) -> None:
    _, answer = _ask(settings, owner, "and from Northwind?")
    assert answer["search"]["follow_up"] is False
    assert answer["search"]["filters"]["from"] == ["Northwind"]


def test_answers_count_their_intent_and_relaxation_step() -> None:
    before = metrics.ASSISTANT_INTENT.labels(intent="count")._value.get()
    relaxed = metrics.ASSISTANT_RELAXED.labels(step="fuzzy")._value.get()
    metrics.record_assistant_answer({"intent": "count", "relaxed": ["window", "fuzzy"]}, 0.02)
    metrics.record_assistant_answer({"intent": "<script>", "relaxed": []}, None)
    assert metrics.ASSISTANT_INTENT.labels(intent="count")._value.get() == before + 1
    assert metrics.ASSISTANT_RELAXED.labels(step="fuzzy")._value.get() == relaxed + 1
    assert metrics.ASSISTANT_INTENT.labels(intent="other")._value.get() >= 1
