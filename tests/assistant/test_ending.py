"""Every question ends with exactly one ``done`` or ``error``, whatever happens to its task.

Fault tests with real Celery worker subprocesses on a broker of their own: tasks
that expire in the queue, are revoked, hit their hard time limit against a hung
search server, die with a worker killed by SIGKILL, or are lost by the broker.
"""

from __future__ import annotations

import os
import secrets
import signal
import time

import pytest

from celery_app import create_celery
from shared.assistant.asking import enqueue_answer
from shared.assistant.ending import answer_task_id
from shared.core.clients import get_redis
from shared.core.keys import RedisKeys
from shared.core.task_names import ASSISTANT_END_OVERDUE

pytestmark = pytest.mark.timeout(90)


def user_id() -> str:
    return "u_end_" + secrets.token_hex(4)


def test_expired_and_revoked_tasks_end_their_questions(isolated) -> None:
    """The issue's 100 frames on one socket: 56 tasks discarded unrun, 49 answers never ended."""
    iso = isolated(2, chat_timeout_seconds=1.0)
    owner = user_id()
    expired = [iso.ask(owner, f"interview {n}") for n in range(20)]
    time.sleep(1.5)  # every task expires in the queue: no worker is consuming yet
    iso.start_worker("expiry-worker")
    withdrawn = iso.record(owner, "offer")
    client = create_celery(iso.settings, with_tasks=False)
    client.control.revoke(answer_task_id(withdrawn.conversation_id, withdrawn.client_message_id))
    time.sleep(0.5)  # the broadcast reaches the worker before the task does

    enqueue_answer(client.send_task, iso.settings, owner, withdrawn)

    iso.wait_for_ends([*expired, withdrawn], timeout=30)
    for question in expired:
        ends = iso.ends(question)
        assert [e.type for e in ends] == ["error"], question
        assert ends[0].data["code"] == "assistant_expired"
        assert ends[0].data["retryable"] is True and ends[0].data["message"]
    ends = iso.ends(withdrawn)
    assert [(e.type, e.data["code"]) for e in ends] == [("error", "assistant_revoked")]
    # Ended questions are no longer open: the overdue sweep has nothing left to do.
    assert iso.redis.zcard(RedisKeys(iso.settings.key_prefix).open_questions()) == 0

    # Sent again (the page's Retry keeps the client message id): asked again, answered.
    from shared.assistant.asking import start_question

    again = start_question(
        iso.redis,
        iso.settings,
        user_id=owner,
        question="interview 0",
        window_days=30,
        conversation_id=expired[0].conversation_id,
        client_message_id=expired[0].client_message_id,
    )
    assert again.needs_answer and again.attempt == 1
    assert again.question_event_id != expired[0].question_event_id
    enqueue_answer(client.send_task, iso.settings, owner, again)
    deadline = time.monotonic() + 30
    while len(iso.ends(again)) < 2 and time.monotonic() < deadline:
        time.sleep(0.3)
    assert [e.type for e in iso.ends(again)] == ["error", "done"]
    # A second re-send of the answered question asks nothing more.
    assert not start_question(
        iso.redis,
        iso.settings,
        user_id=owner,
        question="interview 0",
        window_days=30,
        conversation_id=again.conversation_id,
        client_message_id=again.client_message_id,
    ).needs_answer


def test_hard_time_limit_ends_the_question(isolated, blackhole) -> None:
    """A search that hangs past the hard limit: the process is killed, the question ends."""
    iso = isolated(
        3,
        elasticsearch_url=blackhole.url,
        search_timeout_seconds=60.0,  # only the time limit can stop this search
        answer_soft_time_limit_seconds=0.0,  # no soft limit: the hard one must act
        answer_time_limit_seconds=2.0,
    )
    iso.start_worker("time-limit-worker")
    question = iso.ask(user_id())
    assert blackhole.wait_for_connection(20), "the task never searched"
    iso.wait_for_ends([question], timeout=20)
    ends = iso.ends(question)
    assert [(e.type, e.data.get("code")) for e in ends] == [("error", "assistant_timeout")]
    assert ends[0].data["retryable"] is True


def test_worker_killed_mid_answer_ends_the_question_once(isolated, blackhole) -> None:
    """SIGKILL mid-search: the sweep ends the question; the redelivery after expiry is a no-op."""
    iso = isolated(
        4,
        elasticsearch_url=blackhole.url,
        search_timeout_seconds=60.0,
        chat_timeout_seconds=2.0,
        answer_soft_time_limit_seconds=0.0,
        answer_time_limit_seconds=3.0,
        answer_sweep_seconds=1.0,
        broker_visibility_timeout_seconds=3,
    )
    doomed = iso.start_worker("doomed-answer-worker")
    question = iso.ask(user_id())
    assert blackhole.wait_for_connection(20), "the task never searched"
    os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its pool: no failure handler runs
    doomed.wait()
    assert iso.ends(question) == []

    iso.start_worker("survivor-answer-worker")
    client = create_celery(iso.settings, with_tasks=False)
    iso.wait_for_ends([question], timeout=30, poke=lambda: client.send_task(ASSISTANT_END_OVERDUE))
    ends = iso.ends(question)
    assert len(ends) == 1 and ends[0].type == "error", ends
    assert ends[0].data["code"] in {"assistant_unavailable", "assistant_expired"}
    # The killed worker's message comes back after its visibility timeout, expired by
    # then: the worker discards it (and "ends" the question again, which writes nothing).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (iso.redis.hlen("unacked") or iso.redis.llen("search")):
        time.sleep(0.5)
    assert not iso.redis.hlen("unacked") and not iso.redis.llen("search"), "never redelivered"
    time.sleep(1)
    assert iso.ends(question) == ends


def test_overdue_sweep_ends_questions_whose_task_was_lost(settings, celery_worker) -> None:
    """A task the broker lost never runs: the beat job ends its question after the deadline."""
    import dataclasses

    from shared.assistant.asking import start_question
    from shared.realtime.conversations import claim_conversation
    from shared.realtime.eventlog import EventLog

    quick = dataclasses.replace(
        settings, chat_timeout_seconds=0.2, answer_time_limit_seconds=0.2, answer_sweep_seconds=0.1
    )
    r = get_redis(settings)
    keys = RedisKeys(settings.key_prefix)
    owner = user_id()

    def record(conversation_id: str | None = None):  # type: ignore[no-untyped-def]
        return start_question(
            r,
            quick,
            user_id=owner,
            question="interview",
            window_days=30,
            conversation_id=conversation_id,
            client_message_id=None,
        )

    lost = record()
    deleted = record(claim_conversation(r, settings, owner, None))
    # Its conversation is deleted (as delete-my-data does, but without forgetting the
    # question): the sweep must not bring its log back.
    r.delete(
        keys.conversation_owner(deleted.conversation_id),
        keys.conversation_events(deleted.conversation_id),
    )
    time.sleep(0.6)
    client = create_celery(settings, with_tasks=False)
    events = EventLog(r, settings)
    deadline = time.monotonic() + 30
    ends: list = []
    while time.monotonic() < deadline and not ends:
        client.send_task(ASSISTANT_END_OVERDUE)
        time.sleep(0.5)
        ends = [
            e
            for e in events.read(events.conversation_stream(lost.conversation_id)).events
            if e.type in ("done", "error")
        ]
    assert [(e.type, e.data["code"], e.data["retryable"]) for e in ends] == [
        ("error", "assistant_unavailable", True)
    ]
    assert not r.exists(keys.conversation_events(deleted.conversation_id))
    member = f"{deleted.conversation_id}:{deleted.client_message_id}"
    assert r.zscore(keys.open_questions(), member) is None
    # Delete-my-data forgets the person's open questions at once.
    from shared.core.clients import get_elasticsearch
    from shared.privacy.delete_data import delete_user_data

    gone = record()
    member = f"{gone.conversation_id}:{gone.client_message_id}"
    assert r.zscore(keys.open_questions(), member) is not None
    delete_user_data(get_elasticsearch(settings), r, settings, owner)
    assert r.zscore(keys.open_questions(), member) is None
