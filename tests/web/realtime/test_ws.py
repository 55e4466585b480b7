"""WebSocket /ws through real gunicorn (gevent), Redis and a Celery worker."""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest

from shared.core.clients import get_redis
from shared.core.task_names import DELIVERY_DELIVER
from shared.identity.users import issue_token
from tests.conftest import user_with_mailbox
from tests.live import start_web
from tests.wsclient import WsClient


@pytest.fixture(scope="module")
def web(session_dir, settings, celery_worker):  # type: ignore[no-untyped-def]
    instance = start_web(
        session_dir,
        {"MAILCHAT_WS_AUTH_TIMEOUT_SECONDS": "1", "MAILCHAT_WS_MAX_MESSAGE_BYTES": "2048"},
    )
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def user(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = Path(tmp_path_factory.mktemp("ws"))
    return user_with_mailbox(settings, folder, name="ws", count=200, password="ws-password")


def connect(web, settings, who) -> WsClient:  # type: ignore[no-untyped-def]
    client = WsClient(web.base, web.origin)
    client.send({"type": "auth", "token": issue_token(settings, who)})
    ready = client.receive()
    assert ready and ready["type"] == "ready"
    return client


def is_done(cmid: str):  # type: ignore[no-untyped-def]
    return lambda f: f.get("type") == "done" and f["data"].get("client_message_id") == cmid


def test_no_auth_frame_in_time_closes_4401(web) -> None:
    client = WsClient(web.base, web.origin)
    assert client.wait_closed() == 4401


def test_bad_token_closes_4401(web) -> None:
    client = WsClient(web.base, web.origin)
    client.send({"type": "auth", "token": "forged"})
    assert client.wait_closed() == 4401


def test_foreign_origin_closes_1008(web, settings, user) -> None:
    for origin in ("http://evil.example", None):
        client = WsClient(web.base, origin)
        assert client.wait_closed() == 1008


def test_oversize_frame_closes_1009(web, settings, user) -> None:
    client = connect(web, settings, user)
    client.send({"type": "ping", "padding": "x" * 5000})
    assert client.wait_closed() == 1009


def test_bad_frames_get_error_frames_and_the_socket_stays(web, settings, user, make_user) -> None:
    client = connect(web, settings, user)
    stranger, _ = make_user("ws-stranger")
    cases = [
        ("not json", "invalid_json", None),
        ('{"no": "type"}', "invalid_frame", "type"),
        ({"type": "launch.missiles"}, "unknown_type", "type"),
        ({"type": "chat.send", "q": "", "client_message_id": "m_1"}, "invalid_field", "q"),
        (
            {"type": "chat.send", "q": "x", "window_days": 0, "client_message_id": "m_1"},
            "invalid_field",
            "window_days",
        ),
        ({"type": "chat.send", "q": "x"}, "invalid_field", "client_message_id"),
        (
            {"type": "resume", "conversation_id": "c_nope", "after": "0"},
            "not_found",
            "conversation_id",
        ),
        ({"type": "resume", "conversation_id": "c_x", "after": "bogus"}, "invalid_field", None),
        # Issue 10 item 13: these wrote an HTTP 500 into the socket or killed it.
        (
            {"type": "chat.send", "q": "x", "window_days": "²", "client_message_id": "m_2"},
            "invalid_field",
            "window_days",
        ),
        ({"type": "chat.send", "q": "\ud800", "client_message_id": "m_3"}, "invalid_field", "q"),
        ({"type": "resume", "conversation_id": "c_x", "after": "²"}, "invalid_field", None),
        ({"type": "resume", "conversation_id": "c_x", "after": "9" * 26}, "invalid_field", None),
        ("[" * 1020 + "]" * 1020, "invalid_json", None),  # past the recursion limit
    ]
    for frame, code, field in cases:
        client.send(frame)
        error = client.receive()
        assert error == {
            "type": "error",
            "code": code,
            "message": error["message"],
            "field": field,
        }, frame
    client.send({"type": "ping"})
    assert client.receive() == {"type": "pong"}
    client.close()


def test_chat_send_streams_the_answer_once(web, settings, user) -> None:
    client = connect(web, settings, user)
    cmid = "m_" + secrets.token_hex(6)
    client.send(
        {"type": "chat.send", "client_message_id": cmid, "q": "interviews", "window_days": 120}
    )
    frames = client.receive_until(is_done(cmid))
    kinds = [f["type"] for f in frames]
    assert kinds[:4] == ["question", "search", "hits", "delta"] and kinds[-1] == "done"
    ids = [f["id"] for f in frames]
    assert len(ids) == len(set(ids))
    assert all(set(f) == {"id", "type", "conversation_id", "data"} for f in frames)
    # Sending the same client_message_id again (a retry after reconnect) asks nothing new.
    client.send(
        {
            "type": "chat.send",
            "client_message_id": cmid,
            "q": "interviews",
            "window_days": 120,
            "conversation_id": frames[0]["conversation_id"],
        }
    )
    client.send({"type": "ping"})
    assert client.receive_until(lambda f: f["type"] == "pong") == [{"type": "pong"}]
    client.close()


def test_reconnect_with_epoch_and_after_resumes_exactly_once(web, settings, user) -> None:
    first = connect(web, settings, user)
    cmid = "m_" + secrets.token_hex(6)
    first.send({"type": "chat.send", "client_message_id": cmid, "q": "receipt", "window_days": 120})
    seen = first.receive_until(lambda f: f["type"] == "hits")
    first.close()  # dropped mid-answer
    conversation_id = seen[0]["conversation_id"]
    from shared.realtime.eventlog import EventLog

    events = EventLog(get_redis(settings), settings)
    epoch = events.epoch(events.conversation_stream(conversation_id))
    second = connect(web, settings, user)
    second.send(
        {
            "type": "resume",
            "conversation_id": conversation_id,
            "epoch": epoch,
            "after": seen[-1]["id"],
        }
    )
    seen += second.receive_until(is_done(cmid))
    ids = [f["id"] for f in seen]
    assert len(ids) == len(set(ids))
    assert ids == [e.id for e in events.read(events.conversation_stream(conversation_id)).events]
    stale = connect(web, settings, user)
    stale.send(
        {
            "type": "resume",
            "conversation_id": conversation_id,
            "epoch": "old",
            "after": seen[-1]["id"],
        }
    )
    assert stale.receive()["type"] == "reset"
    for client in (second, stale):
        client.close()


def test_two_tabs_each_get_a_notification_once(web, settings, user, celery_worker) -> None:
    from celery_app import create_celery

    tabs = [connect(web, settings, user), connect(web, settings, user)]
    client = create_celery(settings, with_tasks=False)
    dedup = "test:" + secrets.token_hex(4)
    for _ in range(3):  # a retried delivery: same dedup key, one event
        client.send_task(
            DELIVERY_DELIVER,
            kwargs={
                "target": "user",
                "target_id": user.id,
                "event_type": "notification",
                "data": {"text": "12 new emails"},
                "dedup_key": dedup,
            },
        )
    for tab in tabs:
        frames = tab.receive_until(lambda f: f.get("type") == "notification")
        assert frames[-1]["data"] == {"text": "12 new emails"}
        tab.send({"type": "ping"})
        rest = tab.receive_until(lambda f: f["type"] == "pong")
        assert [f["type"] for f in rest] == ["pong"], "the notification arrived twice"
        tab.close()


def test_a_reconnecting_socket_gets_the_notifications_it_missed_once(
    web, settings, make_user
) -> None:
    """The auth frame names the last notification the page got; what came while it was
    away arrives on the new socket, once; a position the log no longer has gets a reset."""
    from shared.realtime.eventlog import EventLog

    person, _ = make_user("ws-notes")
    events = EventLog(get_redis(settings), settings)
    stream = events.user_stream(person.id)
    seen = events.append(stream, "notification", {"text": "before"}, dedup_key="n-before")

    def auth_with(notifications: object) -> tuple[WsClient, dict]:  # type: ignore[type-arg]
        client = WsClient(web.base, web.origin)
        token = issue_token(settings, person)
        client.send({"type": "auth", "token": token, "notifications": notifications})
        ready = client.receive()
        assert ready and ready["type"] == "ready"
        return client, ready

    first, ready = auth_with(None)  # a first visit starts from now
    assert ready["notifications_after"] == seen.id
    epoch = ready["notifications_epoch"]
    first.close()
    missed = [
        events.append(stream, "notification", {"text": f"away {n}"}, dedup_key=f"n-away-{n}")
        for n in range(3)
    ]
    back, ready = auth_with({"after": seen.id, "epoch": epoch})
    assert ready["notifications_after"] == seen.id
    got = back.receive_until(lambda f: f.get("id") == missed[-1].id)
    assert [f["id"] for f in got] == [e.id for e in missed]
    back.send({"type": "ping"})
    assert [f["type"] for f in back.receive_until(lambda f: f["type"] == "pong")] == ["pong"]
    back.close()

    stale, ready = auth_with({"after": seen.id, "epoch": "another-epoch"})
    assert stale.receive() == {"type": "reset", "stream": "notifications", "epoch": epoch}
    assert ready["notifications_after"] == missed[-1].id  # from now on
    stale.close()
    wrong, _ready = auth_with({"after": "not-an-id"})
    frame = wrong.receive()
    assert frame and frame["type"] == "error" and frame["field"] == "notifications"
    wrong.close()


def test_two_instances_no_sticky_sessions(session_dir, web, settings, user) -> None:
    other = start_web(session_dir)
    try:
        listener = connect(other, settings, user)
        asker = connect(web, settings, user)
        cmid = "m_" + secrets.token_hex(6)
        asker.send(
            {"type": "chat.send", "client_message_id": cmid, "q": "offer", "window_days": 120}
        )
        asked = asker.receive_until(lambda f: f["type"] == "question")
        conversation_id = asked[0]["conversation_id"]
        listener.send({"type": "resume", "conversation_id": conversation_id, "after": "0"})
        heard = listener.receive_until(is_done(cmid))
        assert [f["id"] for f in heard] == [
            f["id"] for f in asked + asker.receive_until(is_done(cmid))
        ]
        instances = get_redis(settings).zrange(f"{settings.key_prefix}web-instances", 0, -1)
        assert len(instances) >= 2
        listener.close()
        asker.close()
    finally:
        other.stop()


def test_sigterm_sends_advice_and_1012_and_clients_resume_elsewhere(
    session_dir, settings, user
) -> None:
    leaving = start_web(session_dir)
    staying = start_web(session_dir)
    try:
        client = connect(leaving, settings, user)
        cmid = "m_" + secrets.token_hex(6)
        client.send(
            {"type": "chat.send", "client_message_id": cmid, "q": "newsletter", "window_days": 120}
        )
        seen = client.receive_until(lambda f: f["type"] == "question")
        conversation_id = seen[0]["conversation_id"]
        leaving.process.terminate()
        frames = client.receive_until(lambda f: f.get("type") == "advice", timeout=15)
        seen += [f for f in frames if "id" in f]
        assert frames[-1]["why"] == "restart"
        assert client.wait_closed() == 1012
        resumed = connect(staying, settings, user)
        resumed.send(
            {"type": "resume", "conversation_id": conversation_id, "after": seen[-1]["id"]}
        )
        seen += resumed.receive_until(is_done(cmid)) if seen[-1]["type"] != "done" else []
        ids = [f["id"] for f in seen]
        assert len(ids) == len(set(ids)) and seen[-1]["type"] == "done"
        resumed.close()
        assert leaving.process.wait(20) == 0
    finally:
        leaving.stop()
        staying.stop()


@pytest.mark.timeout(60)
def test_resume_1200_events_behind_reaches_the_end(web, settings, user) -> None:
    """Issue 10 item 1: a ``resume`` from ``0`` of a long conversation stopped after 500."""
    from tests.web.realtime.test_sse import long_conversation

    conversation_id, ids = long_conversation(settings, user, 1200)
    client = connect(web, settings, user)
    client.send({"type": "resume", "conversation_id": conversation_id, "after": "0"})
    got: list[str] = []
    deadline = time.monotonic() + 20
    while len(got) < len(ids) and time.monotonic() < deadline:
        try:
            frame = client.receive(timeout=3)
        except TimeoutError:
            break  # three quiet seconds: it stopped
        assert frame is not None, f"closed {client.close_code}"
        if frame.get("conversation_id") == conversation_id and "id" in frame:
            got.append(frame["id"])
    client.close()
    assert got == ids, f"stopped after {len(got)} of {len(ids)}"


@pytest.mark.timeout(90)
def test_a_reader_too_slow_for_the_relay_s_writes_still_gets_every_event_once(
    web, settings, user
) -> None:
    """The relay's listener writes a caught-up socket's news itself (issue 14); a socket
    whose buffers are full takes part of a write: the rest goes first when its loop wakes.

    One socket reads at once, the other not for two seconds while 4 MB of events go by
    (more than its buffers hold), then both must have every event once, in order.
    """
    import socket
    import threading

    from shared.realtime.conversations import claim_conversation
    from shared.realtime.eventlog import EventLog

    r = get_redis(settings)
    conversation_id = claim_conversation(r, settings, user.id, None)
    stream = EventLog(r, settings).conversation_stream(conversation_id)
    fast, slow = connect(web, settings, user), connect(web, settings, user)
    slow.raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    for client in (fast, slow):
        client.send({"type": "resume", "conversation_id": conversation_id, "after": "0"})
    time.sleep(0.5)  # both follow the conversation before its first event

    appended: list[str] = []

    def append() -> None:
        events = EventLog(r, settings)
        for n in range(1000):
            event = events.append(
                stream,
                "delta",
                {"n": n, "text": "x" * 4000},
                dedup_key=f"slow:{n}",
                conversation_id=conversation_id,
            )
            appended.append(event.id)

    writer = threading.Thread(target=append)
    writer.start()

    def ids_of(client: WsClient, count: int) -> list[str]:
        got: list[str] = []
        while len(got) < count:
            frame = client.receive(timeout=15)
            assert frame is not None, f"closed {client.close_code} after {len(got)}"
            if frame.get("conversation_id") == conversation_id and "id" in frame:
                got.append(frame["id"])
        return got

    fast_ids = ids_of(fast, 1000)
    writer.join(30)
    time.sleep(2.0)
    slow_ids = ids_of(slow, 1000)
    assert fast_ids == appended
    assert slow_ids == appended
    for client in (fast, slow):
        client.close()
