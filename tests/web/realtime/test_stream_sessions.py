"""Open streams end with their session; asks, frames and sockets are limited (issue 10).

Real gunicorn (gevent), real Redis; the re-check interval is 1 s here (30 s by default).
"""

from __future__ import annotations

import json
import secrets
import statistics
import threading
import time
import urllib.request

import pytest

from shared.assistant.asking import start_question
from shared.core.clients import get_redis
from shared.identity.users import create_user, issue_token
from tests.live import SseReader, http, start_web
from tests.wsclient import WsClient

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def web(session_dir, settings):  # type: ignore[no-untyped-def]
    instance = start_web(
        session_dir,
        {
            "MAILCHAT_SESSION_RECHECK_SECONDS": "1",
            "MAILCHAT_WS_FRAME_RATE_LIMIT": "5 per minute",
            "MAILCHAT_WS_MAX_SOCKETS_PER_USER": "2",
            "MAILCHAT_ASK_RATE_LIMIT": "3 per minute",
        },
    )
    yield instance
    instance.stop()


def person(settings):  # type: ignore[no-untyped-def]
    password = secrets.token_urlsafe(12)
    email = f"streams-{secrets.token_hex(4)}@example.com"
    return create_user(get_redis(settings), settings, email, password), password


def login(web, user, password) -> dict:  # type: ignore[no-untyped-def]
    status, _, body = http(
        "POST", f"{web.base}/api/auth/login", {"email": user.email, "password": password}
    )
    assert status == 200, body
    return dict(json.loads(body))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def connect(web, token: str) -> WsClient:  # type: ignore[no-untyped-def]
    client = WsClient(web.base, web.origin)
    client.send({"type": "auth", "token": token})
    ready = client.receive()
    assert ready and ready["type"] == "ready", ready
    return client


def test_a_socket_closes_4401_soon_after_its_session_is_logged_out(web, settings) -> None:
    user, password = person(settings)
    tokens = login(web, user, password)
    client = connect(web, tokens["access_token"])
    client.send({"type": "ping"})
    assert client.receive()["type"] == "pong"  # type: ignore[index]
    status, _, _ = http("POST", f"{web.base}/api/auth/logout", None, bearer(tokens["access_token"]))
    assert status == 204
    started = time.monotonic()
    assert client.wait_closed(timeout=5) == 4401
    assert time.monotonic() - started < 4


def test_a_socket_closes_4401_when_its_token_expires(web, settings) -> None:
    user, _ = person(settings)
    # A token with 2 seconds left: the socket may not outlive it.
    token = issue_token(settings, user, now=time.time() - settings.access_token_ttl_seconds + 2)
    client = connect(web, token)
    assert client.wait_closed(timeout=6) == 4401


def test_an_sse_stream_ends_with_error_after_a_password_change(web, settings) -> None:
    user, password = person(settings)
    here, there = login(web, user, password), login(web, user, password)
    started = start_question(
        get_redis(settings),
        settings,
        user_id=user.id,
        question="hello",
        window_days=30,
        conversation_id=None,
        client_message_id=None,
    )
    status, _, body = http("POST", f"{web.base}/api/chat/ticket", {}, bearer(there["access_token"]))
    ticket = json.loads(body)["ticket"]
    url = f"{web.base}/api/conversations/{started.conversation_id}/stream?ticket={ticket}"
    stream = SseReader(url, timeout=10)
    assert stream.status == 200
    messages = stream.messages()
    assert any(m["event"] == "ready" for m in (next(messages), next(messages)))
    status, _, _ = http(
        "POST",
        f"{web.base}/api/auth/password",
        {"old_password": password, "new_password": "a-new-password-1"},
        bearer(here["access_token"]),
    )
    assert status == 200
    deadline = time.monotonic() + 6
    final = None
    for message in messages:
        if message["event"] == "error":
            final = message
            break
        assert time.monotonic() < deadline, "the stream outlived its session"
    stream.close()
    assert final is not None and final["data"]["code"] == "session_revoked"
    assert "id" not in final  # a control message: Last-Event-ID stays put


def test_too_many_frames_get_an_error_frame_then_1013(web, settings) -> None:
    user, _ = person(settings)
    client = connect(web, issue_token(settings, user))
    for _ in range(5):
        client.send({"type": "ping"})
        assert client.receive()["type"] == "pong"  # type: ignore[index]
    client.send({"type": "ping"})
    refusal = client.receive()
    assert refusal and refusal["type"] == "error" and refusal["code"] == "rate_limited"
    assert refusal["retry_after_ms"] >= 1000
    assert client.wait_closed() == 1013


def test_sockets_per_person_are_limited(web, settings) -> None:
    user, _ = person(settings)
    token = issue_token(settings, user)
    first, second = connect(web, token), connect(web, token)
    third = WsClient(web.base, web.origin)
    third.send({"type": "auth", "token": token})
    advice = third.receive()
    assert advice and advice["type"] == "advice" and advice["why"] == "overload"
    assert third.wait_closed() == 1013
    # Somebody else is not affected, and a closed socket frees its slot.
    other, _ = person(settings)
    connect(web, issue_token(settings, other)).close()
    first.close()
    deadline = time.monotonic() + 10
    while True:
        again = WsClient(web.base, web.origin)
        again.send({"type": "auth", "token": token})
        frame = again.receive()
        if frame and frame["type"] == "ready":
            break
        assert time.monotonic() < deadline, "the closed socket never freed its slot"
        time.sleep(0.5)
    second.close()
    again.close()


def test_asks_are_one_budget_across_post_sse_and_websocket(web, settings) -> None:
    user, _ = person(settings)
    token = issue_token(settings, user)

    def sse_ask() -> SseReader:
        _, _, body = http("POST", f"{web.base}/api/chat/ticket", {}, bearer(token))
        ticket = json.loads(body)["ticket"]
        return SseReader(f"{web.base}/api/chat/stream?q=hello&ticket={ticket}", timeout=10)

    asked = sse_ask()
    assert asked.status == 200
    asked.close()
    socket = connect(web, token)
    socket.send({"type": "chat.send", "client_message_id": "m-1", "q": "hello"})
    frames = socket.receive_until(lambda f: f.get("type") in {"question", "error"})
    assert frames[-1]["type"] == "question"
    asked = sse_ask()
    assert asked.status == 200
    asked.close()
    # Three asked (the limit here): the fourth is refused on every transport.
    status, headers, body = http("POST", f"{web.base}/api/chat", {"q": "hello"}, bearer(token))
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 60
    assert json.loads(body)["error"]["code"] == "rate_limited"
    refused = sse_ask()
    assert refused.status == 429 and json.loads(refused.body)["error"]["code"] == "rate_limited"
    socket.send({"type": "chat.send", "client_message_id": "m-2", "q": "hello"})
    frame = socket.receive_until(lambda f: f.get("type") == "error")[-1]
    assert frame["code"] == "rate_limited"
    socket.close()
    metrics = urllib.request.urlopen(f"{web.base}/metrics", timeout=10).read().decode()
    assert 'http_rate_limited_total{limit="ask"}' in metrics


def test_healthz_stays_fast_during_a_login_flood(web, settings) -> None:
    """The issue's finding: 16 parallel logins took /healthz from 2 ms to 2.6 s (argon2 on
    the gevent loop). Hashing runs on a thread pool now: p95 under 50 ms during the flood.

    The machine is shared, so a round whose p95 misses is measured once more (hashing on
    the loop misses by seconds, every round: MAILCHAT_PASSWORD_HASH_THREADS=0 shows it).
    """
    people = [person(settings) for _ in range(16)]
    stop = threading.Event()
    logins: list[int] = []

    def flood(user, password) -> None:  # type: ignore[no-untyped-def]
        while not stop.is_set():
            status, _, _ = http(
                "POST", f"{web.base}/api/auth/login", {"email": user.email, "password": password}
            )
            logins.append(status)

    def healthz_p95(seconds: float) -> float:
        latencies = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            started = time.perf_counter()
            with urllib.request.urlopen(f"{web.base}/healthz", timeout=10) as response:
                assert response.status == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
        return statistics.quantiles(latencies, n=20)[-1]

    threads = [threading.Thread(target=flood, args=p, daemon=True) for p in people]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # the flood is on
    rounds = []
    for _ in range(2):
        rounds.append(healthz_p95(5))
        if rounds[-1] < 0.050:
            break
    stop.set()
    for thread in threads:
        thread.join(timeout=20)
    print(
        f"healthz p95 during the flood: {[f'{p * 1000:.1f} ms' for p in rounds]}; "
        f"{len(logins)} logins"
    )
    assert len(logins) >= 16 and set(logins) == {200}, set(logins)
    assert rounds[-1] < 0.050, f"/healthz p95 {rounds} s during the login flood"
