"""Authentication on every /api endpoint and login (health and readiness: test_health.py)."""

from __future__ import annotations

import dataclasses
import time

import pytest

from shared.identity.users import issue_token
from tests.conftest import auth_header


def test_login_returns_a_working_token(client, make_user) -> None:
    user, password = make_user()
    response = client.post(
        "/api/auth/login", json={"email": user.email.upper(), "password": password}
    )
    assert response.status_code == 200
    token = response.get_json()["access_token"]
    assert response.get_json()["expires_in"] == 900
    chat = client.post("/api/chat", json={"q": ""}, headers={"Authorization": f"Bearer {token}"})
    assert chat.status_code == 400  # authenticated: now the empty question is the problem


@pytest.mark.parametrize(
    "body", [{"email": "nobody@example.com", "password": "whatever-123"}, {"email": "x"}]
)
def test_bad_login_is_rejected(client, body) -> None:
    response = client.post("/api/auth/login", json=body)
    assert response.status_code in (400, 401)
    assert "error" in response.get_json()


def test_wrong_password_is_401(client, make_user) -> None:
    user, _ = make_user()
    response = client.post(
        "/api/auth/login", json={"email": user.email, "password": "wrong-password"}
    )
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_credentials"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer not.a.jwt"},
    ],
)
def test_api_requires_a_bearer_token(client, headers) -> None:
    for method, path in [("post", "/api/chat"), ("get", "/api/anything")]:
        response = getattr(client, method)(path, json={"q": "hi"}, headers=headers)
        assert response.status_code == 401, path
        assert response.get_json()["error"]["code"] in ("not_authenticated", "invalid_token")


def test_expired_and_forged_tokens_are_rejected(client, settings, make_user) -> None:
    user, _ = make_user()
    expired = issue_token(settings, user, now=time.time() - 3600)
    forged = issue_token(
        dataclasses.replace(settings, secret_key="not-the-key-but-long-enough-for-hs256!!"), user
    )
    for token in (expired, forged):
        response = client.post(
            "/api/chat", json={"q": "x"}, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401
    assert (
        "expired"
        in client.post(
            "/api/chat", json={"q": "x"}, headers={"Authorization": f"Bearer {expired}"}
        ).get_json()["error"]["message"]
    )


def test_chat_without_worker_is_503_with_retry_after(settings, make_user) -> None:
    """Nobody consumes this app's queue, so the wait times out into a 503."""
    from web import create_app

    app = create_app(dataclasses.replace(settings, chat_timeout_seconds=1.0))
    # Route the question to a queue no worker listens on.
    app.extensions["mailchat"].celery.conf.task_routes = {
        "assistant.*": {"queue": "nobody-listens"}
    }
    user, _ = make_user()
    response = app.test_client().post(
        "/api/chat", json={"q": "hi"}, headers=auth_header(settings, user)
    )
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.get_json()["error"]["code"] == "assistant_unavailable"
