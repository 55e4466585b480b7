"""Issue 10 items 13 and 15: bad input is a JSON 400/413/431 naming the field, never a 500;
every API answer says ``no-store`` and ``nosniff``.

The Flask app on the session's real Redis and noida-db; the cases gunicorn itself
answers (huge headers, chunked bodies) go through a real gunicorn.
"""

from __future__ import annotations

import json
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
