"""SSE through real gunicorn (gevent), Redis and a Celery worker."""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from pathlib import Path

import pytest

from shared.assistant.asking import start_question
from shared.core.clients import get_redis
from shared.core.task_names import ASSISTANT_ANSWER
from shared.identity.users import issue_token
from shared.realtime.eventlog import EventLog
from tests.conftest import user_with_mailbox
from tests.live import SseReader, http, start_web


@pytest.fixture(scope="module")
def web(session_dir, settings, celery_worker):  # type: ignore[no-untyped-def]
    instance = start_web(session_dir, {"MAILCHAT_SSE_PING_SECONDS": "1"})
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def mailbox_user(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = Path(tmp_path_factory.mktemp("sse"))
    return user_with_mailbox(settings, folder, name="sse", count=300, password="sse-password")


def bearer(settings, user) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {issue_token(settings, user)}"}


def ticket(web, settings, user) -> str:  # type: ignore[no-untyped-def]
    status, _, body = http("POST", f"{web.base}/api/chat/ticket", {}, bearer(settings, user))
    assert status == 200
    return json.loads(body)["ticket"]


def read_until_done(reader: SseReader, limit: int = 500) -> list[dict]:
    messages = []
    for message in reader.messages():
        messages.append(message)
        if message.get("event") in ("done", "error") or len(messages) > limit:
            break
    return messages


def test_answer_streams_in_order_with_headers(web, settings, mailbox_user) -> None:
    url = f"{web.base}/api/chat/stream?q=interviews&window_days=90&ticket={ticket(web, settings, mailbox_user)}"
    reader = SseReader(url)
    assert reader.status == 200
    assert reader.headers["Content-Type"].startswith("text/event-stream")
    assert reader.headers["X-Accel-Buffering"] == "no"
    assert reader.headers["Cache-Control"] == "no-store"
    messages = [m for m in read_until_done(reader) if m["event"] not in (":", "retry")]
    reader.close()
    kinds = [m["event"] for m in messages]
    assert (
        kinds[0] == "ready"
        and kinds[1] == "question"
        and kinds[2] == "search"
        and kinds[3] == "hits"
    )
    assert set(kinds[4:-1]) == {"delta"} and len(kinds[4:-1]) >= 3
    assert kinds[-1] == "done"
    events = [m for m in messages if "id" in m]
    assert all(m["id"] == m["data"]["id"] and m["event"] == m["data"]["type"] for m in events)
    assert [m["id"] for m in events] == sorted(
        {m["id"] for m in events}, key=lambda i: tuple(map(int, i.split("-")))
    )
    done = messages[-1]["data"]["data"]
    assert (
        "".join(m["data"]["data"]["text"] for m in messages if m["event"] == "delta")
        == done["answer"]
    )
    assert done["citations"] and done["search"]["total_hits"] > 0


def test_tickets_are_single_use_and_bearer_works_for_services(web, settings, mailbox_user) -> None:
    one = ticket(web, settings, mailbox_user)
    first = SseReader(f"{web.base}/api/chat/stream?q=offer&ticket={one}")
    assert first.status == 200
    read_until_done(first)
    first.close()
    again = SseReader(f"{web.base}/api/chat/stream?q=offer&ticket={one}")
    assert again.status == 401 and json.loads(again.body)["error"]["code"] == "invalid_ticket"
    service = SseReader(
        f"{web.base}/api/chat/stream?q=offer", headers=bearer(settings, mailbox_user)
    )
    assert service.status == 200
    assert read_until_done(service)[-1]["event"] == "done"
    service.close()
    assert SseReader(f"{web.base}/api/chat/stream?q=offer").status == 401


def test_cut_mid_answer_then_resume_sees_every_event_once(web, settings, mailbox_user) -> None:
    reader = SseReader(
        f"{web.base}/api/chat/stream?q=recruiter&window_days=120&ticket={ticket(web, settings, mailbox_user)}"
    )
    seen: list[dict] = []
    conversation_id = epoch = None
    for message in reader.messages():
        if message["event"] == "ready":
            conversation_id, epoch = message["data"]["conversation_id"], message["data"]["epoch"]
        elif "id" in message:
            seen.append(message)
            if message["event"] == "hits":
                break  # the network drops here, mid-answer
    reader.close()
    last_id = seen[-1]["id"]
    resumed = SseReader(
        f"{web.base}/api/conversations/{conversation_id}/stream?epoch={epoch}&ticket={ticket(web, settings, mailbox_user)}",
        headers={"Last-Event-ID": last_id},
    )
    assert resumed.status == 200
    for message in resumed.messages():
        if "id" in message:
            seen.append(message)
        if message["event"] == "done":
            break
    resumed.close()
    ids = [m["id"] for m in seen]
    assert len(ids) == len(set(ids)), "an event was shown twice"
    replay = json.loads(
        http(
            "GET",
            f"{web.base}/api/conversations/{conversation_id}/events",
            headers=bearer(settings, mailbox_user),
        )[2]
    )
    assert replay["epoch"] == epoch
    assert ids == [e["id"] for e in replay["events"]], "an event was lost"
    assert seen[-1]["data"]["data"]["cancelled"] is False


def test_resume_with_a_stale_epoch_gets_reset(web, settings, mailbox_user) -> None:
    status, _, body = http(
        "POST", f"{web.base}/api/chat", {"q": "photos"}, bearer(settings, mailbox_user)
    )
    conversation_id = json.loads(body)["conversation_id"]
    reader = SseReader(
        f"{web.base}/api/conversations/{conversation_id}/stream?epoch=old&after=0",
        headers=bearer(settings, mailbox_user),
    )
    first = next(m for m in reader.messages() if m["event"] not in (":", "retry"))
    reader.close()
    assert first["event"] == "reset" and first["data"]["conversation_id"] == conversation_id


def test_someone_elses_conversation_is_not_found(web, settings, mailbox_user, make_user) -> None:
    status, _, body = http(
        "POST", f"{web.base}/api/chat", {"q": "photos"}, bearer(settings, mailbox_user)
    )
    conversation_id = json.loads(body)["conversation_id"]
    stranger, _ = make_user("stranger")
    for path in (
        f"/api/conversations/{conversation_id}/stream",
        f"/api/conversations/{conversation_id}/events",
    ):
        status, _, body = http("GET", web.base + path, headers=bearer(settings, stranger))
        assert status == 404, path
    listed = json.loads(
        http("GET", f"{web.base}/api/conversations", headers=bearer(settings, mailbox_user))[2]
    )
    assert conversation_id in [c["id"] for c in listed["conversations"]]
    assert (
        conversation_id
        not in http("GET", f"{web.base}/api/conversations", headers=bearer(settings, stranger))[
            2
        ].decode()
    )


@pytest.mark.parametrize("spelling", ["false", "0", "no", "n"])
def test_canary_off_answers_503_naming_post_chat(settings, make_user, spelling: str) -> None:
    from shared.core.settings import Settings
    from web import create_app

    # The seed's variable name is honoured as well as MAILCHAT_CHAT_STREAMING_ENABLED.
    assert Settings.from_env({"CHAT_STREAMING_ENABLED": spelling}).chat_streaming_enabled is False
    off = dataclasses.replace(settings, chat_streaming_enabled=False)
    client = create_app(off).test_client()
    user, _ = make_user()
    for path in ("/api/chat/stream?q=hi", "/api/conversations/c_x/stream"):
        response = client.get(path, headers=bearer(settings, user))
        assert response.status_code == 503
        assert response.headers["X-Chat-Streaming-Disabled"] == "1"
        assert "POST /api/chat" in response.get_json()["error"]["message"]
    assert (
        client.post("/api/chat", json={"q": ""}, headers=bearer(settings, user)).status_code == 400
    )


def test_invalid_stream_request_names_the_field(web, settings, mailbox_user) -> None:
    reader = SseReader(
        f"{web.base}/api/chat/stream?q=hi&window_days=400", headers=bearer(settings, mailbox_user)
    )
    assert reader.status == 400 and json.loads(reader.body)["error"]["field"] == "window_days"


def test_a_newer_question_cancels_the_older_one(settings, mailbox_user, celery_worker) -> None:
    """Deterministic: the older question is superseded before the worker starts it."""
    from celery_app import create_celery

    r = get_redis(settings)
    older = start_question(
        r,
        settings,
        user_id=mailbox_user.id,
        question="offer",
        window_days=30,
        conversation_id=None,
        client_message_id="m_older_" + secrets.token_hex(3),
    )
    newer = start_question(
        r,
        settings,
        user_id=mailbox_user.id,
        question="receipt",
        window_days=30,
        conversation_id=older.conversation_id,
        client_message_id="m_newer_" + secrets.token_hex(3),
    )
    client = create_celery(settings, with_tasks=False)
    for started, q in ((older, "offer"), (newer, "receipt")):
        client.send_task(
            ASSISTANT_ANSWER,
            kwargs={
                "user_id": mailbox_user.id,
                "conversation_id": started.conversation_id,
                "client_message_id": started.client_message_id,
                "question": q,
                "window_days": 30,
            },
        )
    events = EventLog(r, settings)
    stream = events.conversation_stream(older.conversation_id)
    deadline = time.monotonic() + 30
    done: dict[str, dict] = {}
    while time.monotonic() < deadline and len(done) < 2:
        done = {
            e.data["client_message_id"]: e.data
            for e in events.read(stream).events
            if e.type == "done"
        }
        time.sleep(0.1)
    assert done[older.client_message_id]["cancelled"] is True
    assert done[newer.client_message_id]["cancelled"] is False
    older_types = [
        e.type
        for e in events.read(stream).events
        if e.data.get("client_message_id") == older.client_message_id
    ]
    assert older_types == ["question", "done"], "no work is spent on a superseded question"


def test_sse_pings_while_idle(web, settings, mailbox_user) -> None:
    status, _, body = http(
        "POST", f"{web.base}/api/chat", {"q": "photos"}, bearer(settings, mailbox_user)
    )
    conversation_id = json.loads(body)["conversation_id"]
    reader = SseReader(
        f"{web.base}/api/conversations/{conversation_id}/stream",
        headers=bearer(settings, mailbox_user),
    )
    kinds = []
    for message in reader.messages():
        kinds.append(message["event"])
        if kinds.count(":") >= 1:
            break
    reader.close()
    assert "ready" in kinds and ":" in kinds


def test_sigterm_ends_streams_with_reconnect(
    session_dir, settings, mailbox_user, celery_worker
) -> None:
    leaving = start_web(session_dir)
    try:
        status, _, body = http(
            "POST", f"{leaving.base}/api/chat", {"q": "photos"}, bearer(settings, mailbox_user)
        )
        conversation_id = json.loads(body)["conversation_id"]
        reader = SseReader(
            f"{leaving.base}/api/conversations/{conversation_id}/stream",
            headers=bearer(settings, mailbox_user),
        )
        kinds = []
        for message in reader.messages():
            kinds.append(message["event"])
            if message["event"] == "ready":
                leaving.process.terminate()
            if message["event"] == "reconnect":
                break
        reader.close()
        assert kinds[-1] == "reconnect"
        assert leaving.process.wait(20) == 0
    finally:
        leaving.stop()


def test_unanswered_question_ends_the_stream_with_an_error(settings, make_user) -> None:
    """No worker listens to this app's queue: after the chat timeout the stream says so."""
    from web import create_app

    app = create_app(dataclasses.replace(settings, chat_timeout_seconds=1.0))
    app.extensions["mailchat"].celery.conf.task_routes = {
        "assistant.*": {"queue": "nobody-listens"}
    }
    user, _ = make_user()
    response = app.test_client().get("/api/chat/stream?q=hello", headers=bearer(settings, user))
    text = response.get_data(as_text=True)
    assert "event: error" in text and "assistant_unavailable" in text


def long_conversation(settings, user, count: int) -> tuple[str, list[str]]:  # type: ignore[no-untyped-def]
    """A conversation of ``count`` events written by plain XADD (no doorbell rings)."""
    from shared.realtime.conversations import claim_conversation

    r = get_redis(settings)
    conversation_id = claim_conversation(r, settings, user.id, None)
    stream = EventLog(r, settings).conversation_stream(conversation_id)
    pipe = r.pipeline(transaction=False)
    for n in range(count):
        data = json.dumps({"n": n})
        pipe.xadd(stream, {"type": "delta", "conversation_id": conversation_id, "data": data})
    return conversation_id, [str(i) for i in pipe.execute()]


@pytest.mark.timeout(60)
def test_a_follower_1200_events_behind_reaches_the_end(web, settings, mailbox_user) -> None:
    """Issue 10 item 1: from ``0`` (and from Last-Event-ID) the stream delivered 500, then pings."""
    conversation_id, ids = long_conversation(settings, mailbox_user, 1200)
    for headers, expected in (({}, ids), ({"Last-Event-ID": ids[99]}, ids[100:])):
        reader = SseReader(
            f"{web.base}/api/conversations/{conversation_id}/stream?after=0",
            headers={**bearer(settings, mailbox_user), **headers},
        )
        got: list[str] = []
        pings = 0
        for message in reader.messages():
            if "id" in message:
                got.append(message["id"])
                if len(got) == len(expected):
                    break
            elif message["event"] == ":":
                pings += 1  # one ping per idle second: 5 in a row means it stopped
                if pings > 5:
                    break
        reader.close()
        assert len(got) == len(expected) and got == expected, f"stopped after {len(got)}"
