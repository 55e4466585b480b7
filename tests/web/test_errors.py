"""Issue 10 items 13 and 15: bad input is a JSON 400/413/431 naming the field, never a 500;
every API answer says ``no-store`` and ``nosniff``.

The Flask app on the session's real Redis and noida-db; the cases gunicorn itself
answers (huge headers, chunked bodies) go through a real gunicorn.
"""

from __future__ import annotations

import json
import os
import socket

import pytest

from shared.realtime.conversations import claim_conversation
from tests.conftest import auth_header
from tests.live import start_web

pytestmark = pytest.mark.timeout(60)

DEEP = "[" * 30_000 + "]" * 30_000


def _error(response, status: int, field: str | None):  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "field"} and error["field"] == field, error
    return error


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"q": "x", "window_days": "²"}, "window_days"),
        ({"q": "x", "window_days": "9" * 5000}, "window_days"),
        ({"q": "x", "window_days": "٣٠"}, "window_days"),  # Arabic-Indic 30: not ASCII digits
        ({"q": "lone \ud800 surrogate"}, "q"),
        ({"messages": [{"role": "user", "content": "\udfff"}]}, "messages"),
        ({"q": "x", "client_message_id": "\ud800"}, "client_message_id"),
    ],
)
def test_chat_bad_fields_are_400_naming_the_field(client, settings, make_user, body, field) -> None:
    user, _ = make_user()
    _error(client.post("/api/chat", json=body, headers=auth_header(settings, user)), 400, field)


def test_30000_nested_brackets_are_invalid_json(client, settings, make_user) -> None:
    user, _ = make_user()
    headers = {**auth_header(settings, user), "Content-Type": "application/json"}
    for body in (DEEP, '{"q": ' + DEEP + "}"):
        error = _error(client.post("/api/chat", data=body, headers=headers), 400, "body")
        assert error["code"] == "invalid_json"


def test_lone_surrogates_in_login_and_imap_host_are_400(client, settings, make_user) -> None:
    _error(
        client.post("/api/auth/login", json={"email": "\ud800@x", "password": "p"}), 400, "email"
    )
    user, _ = make_user()
    body = {"provider": "imap", "host": "imap.\ud800.example", "username": "u", "password": "p"}
    _error(
        client.post("/api/accounts", json=body, headers=auth_header(settings, user)), 400, "host"
    )


@pytest.mark.parametrize(
    "after", ["²", "99999999999999999999999999", "1-99999999999999999999", "1-²", "-1", "1-"]
)
def test_bad_after_is_400_on_replay_and_stream(client, settings, make_user, after) -> None:
    from shared.core.clients import get_redis

    user, _ = make_user()
    conversation = claim_conversation(get_redis(settings), settings, user.id, None)
    headers = auth_header(settings, user)
    for url in (
        f"/api/conversations/{conversation}/events",
        f"/api/conversations/{conversation}/stream",
    ):
        _error(client.get(url, query_string={"after": after}, headers=headers), 400, "after")
    stream = client.get(
        f"/api/conversations/{conversation}/stream", headers={**headers, "Last-Event-ID": after}
    )
    _error(stream, 400, "after")


def test_the_largest_event_id_is_valid_and_has_nothing_after_it(
    client, settings, make_user
) -> None:
    from shared.core.clients import get_redis

    user, _ = make_user()
    conversation = claim_conversation(get_redis(settings), settings, user.id, None)
    largest = f"{2**64 - 1}-{2**64 - 1}"
    response = client.get(
        f"/api/conversations/{conversation}/events",
        query_string={"after": largest},
        headers=auth_header(settings, user),
    )
    assert response.status_code == 200 and response.get_json()["events"] == []


def test_api_answers_are_no_store_and_nosniff(client, settings, make_user) -> None:
    """Item 15: success, client error and not-found alike."""
    user, _ = make_user()
    headers = auth_header(settings, user)
    for response in (
        client.get("/api/me", headers=headers),
        client.get("/api/conversations", headers=headers),
        client.post("/api/chat", json={}, headers=headers),
        client.get("/api/nowhere", headers=headers),
        client.get("/api/me"),
    ):
        assert response.headers["Cache-Control"] == "no-store", response.request.path
        assert response.headers["X-Content-Type-Options"] == "nosniff", response.request.path


# --- what gunicorn answers itself --------------------------------------------------------


@pytest.fixture(scope="module")
def web(session_dir, settings):  # type: ignore[no-untyped-def]
    instance = start_web(session_dir)
    yield instance
    instance.stop()


def _raw(web, request: bytes) -> tuple[int, dict[str, str], bytes]:  # type: ignore[no-untyped-def]
    """One raw HTTP/1.1 exchange (urllib cannot send 60 KB headers or hand-made chunks)."""
    with socket.create_connection(("127.0.0.1", web.port), timeout=20) as conn:
        conn.sendall(request)
        conn.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_a_60_kb_header_is_a_json_431(web) -> None:
    status, headers, body = _raw(
        web,
        b"GET /api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + b"a" * 60_000
        + b"\r\nConnection: close\r\n\r\n",
    )
    assert status == 431
    assert headers["content-type"].startswith("application/json")
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(body)["error"]["field"] == "headers"


def test_a_chunked_70_kb_body_is_a_413(web, settings, make_user) -> None:
    user, _ = make_user()
    payload = json.dumps({"q": "a" * 70_000}).encode()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(payload[i : i + 8192]), payload[i : i + 8192])
        for i in range(0, len(payload), 8192)
    )
    token = auth_header(settings, user)["Authorization"].encode()
    status, headers, body = _raw(
        web,
        b"POST /api/chat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: " + token + b"\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunks + b"0\r\n\r\n",
    )
    assert status == 413, body[:300]
    assert headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"]["field"] == "body"


# --- a server down (item 13, with item 18's real stopped servers) ------------------------


def _own_settings(settings, redis_url: str, es_url: str | None = None):  # type: ignore[no-untyped-def]
    import dataclasses

    return dataclasses.replace(
        settings, redis_url=redis_url, elasticsearch_url=es_url or settings.elasticsearch_url
    )


def _assert_503(status: int, headers: dict[str, str], body: bytes, code: str) -> None:
    assert status == 503, body[:300]
    assert int({k.lower(): v for k, v in headers.items()}["retry-after"]) > 0
    assert json.loads(body)["error"]["code"] == code


def test_redis_down_is_503_over_http_and_advice_then_1013_on_sockets(tmp_path, settings) -> None:
    """Chat answered 500 and sockets closed 1011 without advice when Redis stopped."""
    from devtools.servers import start_redis
    from shared.core.clients import get_redis
    from shared.identity.users import create_user, issue_token
    from tests.live import SseReader, http
    from tests.wsclient import WsClient

    own = start_redis(tmp_path / "redis")  # this test's own Redis: it stops it
    web = start_web(tmp_path, {"MAILCHAT_REDIS_URL": own.url, "MAILCHAT_SSE_PING_SECONDS": "1"})
    try:
        mine = _own_settings(settings, own.url)
        user = create_user(get_redis(mine), mine, "down@example.com", "down-password")
        conversation = claim_conversation(get_redis(mine), mine, user.id, None)
        bearer = {"Authorization": f"Bearer {issue_token(mine, user)}"}
        socket_before = WsClient(web.base, web.origin)
        socket_before.send({"type": "auth", "token": issue_token(mine, user)})
        assert socket_before.receive()["type"] == "ready"
        follower = SseReader(f"{web.base}/api/conversations/{conversation}/stream", bearer)
        messages = follower.messages()
        assert next(m for m in messages if m["event"] == "ready")
        own.stop()

        frames = socket_before.receive_until(lambda f: f["type"] == "advice", timeout=15)
        assert frames[-1]["why"] == "server_unavailable" and frames[-1]["retry_after_ms"] > 0
        assert socket_before.wait_closed() == 1013
        socket_after = WsClient(web.base, web.origin)  # connecting while it is down
        socket_after.send({"type": "auth", "token": issue_token(mine, user)})
        assert socket_after.receive()["type"] == "advice"
        assert socket_after.wait_closed() == 1013
        # The stream's 200 was sent long ago: its last message says what happened instead.
        last = next(m for m in messages if m["event"] not in (":", "retry"))
        assert last["event"] == "error" and last["data"]["code"] == "storage_unavailable"
        assert next(messages, None) is None
        follower.close()

        _assert_503(
            *http("POST", f"{web.base}/api/chat", {"q": "x"}, bearer), "storage_unavailable"
        )
        stream = f"{web.base}/api/conversations/{conversation}/stream"
        _assert_503(*http("GET", stream, headers=bearer), "storage_unavailable")
    finally:
        web.stop()
        own.stop()
    assert "Traceback" not in web.log_path.read_text()


def test_search_down_is_503_for_chat_and_email(tmp_path, settings) -> None:
    """With noida-db stopped, chat answered 502 (and opening an email 500)."""
    from devtools.servers import start_noida_elasticsearch, start_redis
    from shared.core.clients import get_redis
    from shared.identity.users import create_user, issue_token
    from tests.live import http, start_worker

    own_redis = start_redis(tmp_path / "redis")
    own_es = start_noida_elasticsearch(tmp_path / "es")
    env = {"MAILCHAT_REDIS_URL": own_redis.url, "MAILCHAT_ELASTICSEARCH_URL": own_es.url}
    mine = _own_settings(settings, own_redis.url, own_es.url)
    worker = start_worker(mine, tmp_path / "worker.log", {**os.environ, **env}, concurrency=1)
    web = start_web(tmp_path, {**env, "MAILCHAT_CHAT_TIMEOUT_SECONDS": "40"})
    try:
        own_es.stop()
        user = create_user(get_redis(mine), mine, "nosearch@example.com", "nosearch-password")
        bearer = {"Authorization": f"Bearer {issue_token(mine, user)}"}
        _assert_503(*http("POST", f"{web.base}/api/chat", {"q": "x"}, bearer), "search_unavailable")
        email = f"{web.base}/api/emails/{user.id}:0123456789abcdef"
        _assert_503(*http("GET", email, headers=bearer), "search_unavailable")
    finally:
        web.stop()
        worker.terminate()
        worker.wait(20)
        own_es.stop()
        own_redis.stop()


def test_a_bad_after_is_400_even_beside_a_good_last_event_id(client, settings, make_user) -> None:
    """Found by Schemathesis: Last-Event-ID won, so a malformed ?after= was silently ignored."""
    from shared.core.clients import get_redis

    user, _ = make_user()
    conversation = claim_conversation(get_redis(settings), settings, user.id, None)
    stream = client.get(
        f"/api/conversations/{conversation}/stream",
        query_string={"after": "not-an-id"},
        headers={**auth_header(settings, user), "Last-Event-ID": "0"},
    )
    _error(stream, 400, "after")
