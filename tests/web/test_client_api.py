"""The browser client's server side: the page and its files, token refresh, opening a
cited email (owner-checked), the UX telemetry endpoints, and the canary probe."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from shared.core.clients import get_elasticsearch
from shared.core.user_agents import USER_AGENT_TYPES, user_agent_type
from shared.index.search import search_emails
from tests.conftest import auth_header, user_with_mailbox


def metric_value(client, name: str, labels: str = "") -> float:  # type: ignore[no-untyped-def]
    text = client.get("/metrics").get_data(as_text=True)
    for line in text.splitlines():
        if line.startswith(f"{name}{labels} ") or (not labels and line.startswith(f"{name} ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


@pytest.fixture(scope="module")
def owner_with_mail(settings, tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = Path(tmp_path_factory.mktemp("viewer"))
    return user_with_mailbox(settings, folder, name="viewer", count=20, password="viewer-password")


# --- the page --------------------------------------------------------------------------


def test_the_page_and_its_modules_are_served_without_a_build(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert '<script type="module" src="/static/js/main.js">' in html
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "connect-src 'self'" in csp
    assert page.headers["Cache-Control"] == "no-cache"
    module = client.get("/static/js/api.js")
    assert module.status_code == 200 and "javascript" in module.mimetype
    assert module.headers["Cache-Control"] == "no-cache" and module.headers.get("ETag")
    assert "export class Api" in module.get_data(as_text=True)
    assert client.get("/static/app.css").mimetype == "text/css"
    for bad in ("/static/../client.py", "/static/%2e%2e/client.py", "/static/js/missing.js"):
        response = client.get(bad)
        assert response.status_code == 404 and response.is_json, bad


def test_client_config_names_the_limits(client, settings) -> None:
    config = client.get("/client/config").get_json()
    assert config["max_question_chars"] == settings.max_question_chars
    assert config["windows_days"] == [7, 30, 60, 90]
    assert config["heartbeat_seconds"] == settings.ux_heartbeat_seconds == 30.0


# Token refresh (rotating refresh tokens): tests/web/api/test_auth_sessions.py.


# --- opening a cited email -----------------------------------------------------------------


def test_the_owner_opens_a_cited_email(client, settings, owner_with_mail) -> None:
    hit = search_emails(get_elasticsearch(settings), settings, owner_with_mail.id, "", 365).hits[0]
    response = client.get(f"/api/emails/{hit.id}", headers=auth_header(settings, owner_with_mail))
    assert response.status_code == 200
    email = response.get_json()
    assert email["id"] == hit.id and email["subject"] == hit.subject
    assert email["from_address"] == hit.from_address and email["from"]
    assert email["received_at"] == hit.received_at
    assert owner_with_mail.email in email["to"]
    assert isinstance(email["labels"], list) and email["body"].strip()
    assert email["body_truncated"] is False


def test_somebody_elses_email_is_not_found(client, settings, owner_with_mail, make_user) -> None:
    stranger, _ = make_user("stranger")
    hit = search_emails(get_elasticsearch(settings), settings, owner_with_mail.id, "", 365).hits[0]
    for email_id in (hit.id, f"{stranger.id}:{hit.id.split(':', 1)[1]}", "u_nobody:abc"):
        response = client.get(f"/api/emails/{email_id}", headers=auth_header(settings, stranger))
        assert response.status_code == 404, email_id
        assert response.get_json()["error"] == {
            "code": "email_not_found",
            "message": "No such email.",
            "field": "id",
        }
    assert client.get(f"/api/emails/{hit.id}").status_code == 401
    bad = client.get("/api/emails/" + "x" * 300, headers=auth_header(settings, stranger))
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "id"


# --- UX telemetry --------------------------------------------------------------------------


def test_chat_opened_counts(client, settings, make_user) -> None:
    user, _ = make_user("ux")
    before = metric_value(client, "ux_chat_opened_total")
    response = client.post("/api/ux/chat/opened", headers=auth_header(settings, user))
    assert response.status_code == 204 and response.get_data() == b""
    assert metric_value(client, "ux_chat_opened_total") == before + 1
    assert client.post("/api/ux/chat/opened").status_code == 401


def test_heartbeat_counts_by_a_small_fixed_set_of_client_kinds(client, settings, make_user) -> None:
    user, _ = make_user("ux")
    desktop = (
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0 Safari/537.36"
    )
    label = '{user_agent_type="desktop"}'
    before = metric_value(client, "ux_heartbeat_total", label)
    headers = {**auth_header(settings, user), "User-Agent": desktop}
    assert client.post("/api/ux/heartbeat", headers=headers).status_code == 204
    assert metric_value(client, "ux_heartbeat_total", label) == before + 1
    text = client.get("/metrics").get_data(as_text=True)
    kinds = {
        line.split('user_agent_type="')[1].split('"')[0]
        for line in text.splitlines()
        if line.startswith("ux_heartbeat_total{")
    }
    assert kinds <= set(USER_AGENT_TYPES)


def test_telemetry_takes_no_body(client, settings, make_user) -> None:
    user, _ = make_user("ux")
    response = client.post(
        "/api/ux/heartbeat", headers=auth_header(settings, user), json={"user_id": "spoof"}
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "unexpected_body"


def test_telemetry_is_rate_limited_per_person(settings, make_user) -> None:
    from web import create_app

    app = create_app(dataclasses.replace(settings, ux_rate_limit_per_minute=3))
    client = app.test_client()
    user, _ = make_user("ux")
    other, _ = make_user("ux")
    statuses = [
        client.post("/api/ux/heartbeat", headers=auth_header(settings, user)).status_code
        for _ in range(4)
    ]
    if statuses != [204, 204, 204, 429]:
        # The minute turned over between two requests: the next four are all in one window.
        statuses = [
            client.post("/api/ux/heartbeat", headers=auth_header(settings, user)).status_code
            for _ in range(4)
        ]
    assert statuses[-1] == 429 and statuses.count(204) <= 3
    refused = client.post("/api/ux/heartbeat", headers=auth_header(settings, user))
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.get_json()["error"]["code"] == "rate_limited"
    assert client.post("/api/ux/heartbeat", headers=auth_header(settings, other)).status_code == 204
    assert (
        client.post("/api/ux/chat/opened", headers=auth_header(settings, user)).status_code == 204
    )


@pytest.mark.parametrize(
    ("agent", "kind"),
    [
        (
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126 Safari/537.36",
            "desktop",
        ),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) Version/17.5 Safari/605.1.15", "desktop"),
        (
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) Mobile/15E148 Safari/604.1",
            "mobile",
        ),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) Chrome/126 Mobile Safari/537.36", "mobile"),
        ("Mozilla/5.0 (iPad; CPU OS 17_5 like Mac OS X) Safari/604.1", "tablet"),
        ("Mozilla/5.0 (Linux; Android 14; SM-X910) Chrome/126 Safari/537.36", "tablet"),
        ("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/126.0 Safari/537.36", "bot"),
        ("Googlebot/2.1 (+http://www.google.com/bot.html)", "bot"),
        ("curl/8.5.0", "bot"),
        ("", "other"),
        (None, "other"),
        ("something odd", "other"),
    ],
)
def test_user_agent_types(agent, kind) -> None:  # type: ignore[no-untyped-def]
    assert user_agent_type(agent) == kind


# --- the canary probe the page relies on ------------------------------------------------------


def test_the_stream_probe_asks_nothing(client, settings, make_user) -> None:
    """Without ``q`` the stream endpoint answers 400 when streaming is on (nothing asked),
    and 503 with X-Chat-Streaming-Disabled when it is off: the page's probe reads that."""
    from web import create_app

    user, _ = make_user("probe")
    on = client.get("/api/chat/stream", headers=auth_header(settings, user))
    assert on.status_code == 400 and on.get_json()["error"]["field"] == "q"
    conversations = client.get("/api/conversations", headers=auth_header(settings, user))
    assert conversations.get_json()["conversations"] == []
    off = create_app(dataclasses.replace(settings, chat_streaming_enabled=False)).test_client()
    response = off.get("/api/chat/stream", headers=auth_header(settings, user))
    assert response.status_code == 503 and response.headers["X-Chat-Streaming-Disabled"] == "1"
    assert json.loads(response.get_data())["error"]["code"] == "streaming_disabled"
