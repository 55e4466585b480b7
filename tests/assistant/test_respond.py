"""One answer per question: computed once, emitted from that, whatever retries in between."""

from __future__ import annotations

import json
import secrets
from datetime import date
from pathlib import Path

import pytest

from devtools.demo_mailbox import write_mbox
from shared.assistant.asking import start_question
from shared.assistant.ending import emit
from shared.assistant.respond import (
    Outcome,
    answer_parts,
    load_question,
    prepare_draft,
    run_answer,
)
from shared.core.clients import get_elasticsearch, get_redis
from shared.index.writer import import_mbox
from shared.realtime.eventlog import EventLog

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def mailbox_owner(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    owner = "u_respond_" + secrets.token_hex(4)
    folder = Path(tmp_path_factory.mktemp("respond"))
    write_mbox(
        folder / "a.mbox", owner_address=f"{owner}@example.com", today=date.today(), count=120
    )
    import_mbox(get_elasticsearch(settings), settings, owner, folder / "a.mbox", refresh=True)
    return owner, folder


def test_a_retry_emits_the_first_computed_answer_not_a_second_one(settings, mailbox_owner) -> None:
    owner, folder = mailbox_owner
    r, es = get_redis(settings), get_elasticsearch(settings)
    started = start_question(
        r,
        settings,
        user_id=owner,
        question="interview",
        window_days=365,
        conversation_id=None,
        client_message_id=None,
    )
    asked = load_question(r, settings, started.conversation_id, started.client_message_id)
    assert asked is not None and asked.question == "interview" and asked.window_days == 365

    # The first run computes its answer and emits part of it, then dies (a Redis blip).
    first = prepare_draft(es, r, settings, owner, asked)
    assert first.search["total_hits"] > 0
    parts = answer_parts(first)
    for event_type, part, data in parts[:4]:
        emit(
            r, settings, started.conversation_id, started.client_message_id, event_type, part, data
        )

    # New mail arrives before the retry: searching again would give another answer.
    write_mbox(
        folder / "b.mbox",
        owner_address=f"{owner}@example.com",
        today=date.today(),
        count=60,
        seed=11,
    )
    import_mbox(es, settings, owner, folder / "b.mbox", refresh=True)

    outcome = run_answer(
        es,
        r,
        settings,
        user_id=owner,
        conversation_id=started.conversation_id,
        client_message_id=started.client_message_id,
    )
    assert outcome is Outcome.ANSWERED
    events = EventLog(r, settings)
    log = events.read(events.conversation_stream(started.conversation_id)).events
    deltas = [e for e in log if e.type == "delta"]
    (done,) = [e for e in log if e.type == "done"]
    assert [e.type for e in log].count("search") == 1 and [e.type for e in log].count("hits") == 1
    assert [d.data["index"] for d in deltas] == list(range(len(deltas)))
    assert "".join(d.data["text"] for d in deltas) == done.data["answer"] == first.answer
    assert done.data["search"] == first.search and done.data["citations"] == first.citations
    # A redelivery after the end writes nothing more.
    again = run_answer(
        es,
        r,
        settings,
        user_id=owner,
        conversation_id=started.conversation_id,
        client_message_id=started.client_message_id,
    )
    assert again is Outcome.ALREADY_ENDED
    assert events.read(events.conversation_stream(started.conversation_id)).events == log


def test_a_superseded_question_ends_cancelled(settings, mailbox_owner) -> None:
    owner, _ = mailbox_owner
    r, es = get_redis(settings), get_elasticsearch(settings)

    def ask(conversation_id: str | None):  # type: ignore[no-untyped-def]
        return start_question(
            r,
            settings,
            user_id=owner,
            question="offer",
            window_days=30,
            conversation_id=conversation_id,
            client_message_id=None,
        )

    older = ask(None)
    newer = ask(older.conversation_id)
    outcome = run_answer(
        es,
        r,
        settings,
        user_id=owner,
        conversation_id=older.conversation_id,
        client_message_id=older.client_message_id,
    )
    assert outcome is Outcome.CANCELLED
    events = EventLog(r, settings)
    log = events.read(events.conversation_stream(older.conversation_id)).events
    older_events = [e for e in log if e.data.get("client_message_id") == older.client_message_id]
    assert [e.type for e in older_events] == ["question", "done"]
    assert older_events[-1].data["cancelled"] is True
    assert newer.needs_answer


def test_task_carries_ids_not_the_question(isolated) -> None:
    """Task arguments show in Flower and the broker: the question stays in the log."""
    from shared.core.keys import RedisKeys
    from shared.identity.users import create_user
    from web import create_app

    iso = isolated(5, chat_timeout_seconds=0.5)
    user = create_user(iso.redis, iso.settings, "ids-only@example.com", "ids-only-password")
    secret = "zanzibar-" + secrets.token_hex(6)
    app = create_app(iso.settings)
    try:
        from tests.conftest import auth_header

        response = app.test_client().post(
            "/api/chat",
            json={"q": f"{secret} in the last 7 days", "client_message_id": "m_ids_only"},
            headers=auth_header(iso.settings, user),
        )
    finally:
        app.extensions["mailchat"].relay.stop()
    assert response.status_code == 503  # no worker consumes this broker
    (raw,) = iso.redis.lrange("search", 0, -1)
    assert secret not in raw
    message = json.loads(raw)
    import base64

    body = base64.b64decode(message["body"]).decode()
    assert secret not in body and secret not in json.dumps(message["headers"])
    args, kwargs, _ = json.loads(body)
    conversation_id = response.get_json().get("conversation_id") or kwargs["conversation_id"]
    assert args == [] and kwargs == {
        "user_id": user.id,
        "conversation_id": conversation_id,
        "client_message_id": "m_ids_only",
        "attempt": 0,
    }
    assert message["headers"]["id"] == f"assistant.answer:{conversation_id}:m_ids_only:0"
    # The question itself is in the conversation's log, where the worker reads it.
    stream = RedisKeys(iso.settings.key_prefix).conversation_events(conversation_id)
    question = load_question(iso.redis, iso.settings, conversation_id, "m_ids_only")
    assert question is not None and secret in question.question and iso.redis.exists(stream)
