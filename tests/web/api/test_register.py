"""Sign-up: on by default, off by a setting, password rules stated in the error, no overwrite."""

from __future__ import annotations

import dataclasses
import secrets

from shared.identity.users import MIN_PASSWORD_LENGTH


def _email() -> str:
    return f"new-{secrets.token_hex(4)}@example.com"


def test_register_then_log_in(client) -> None:
    email = _email()
    created = client.post("/api/auth/register", json={"email": email, "password": "long enough 1"})
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["user"]["email"] == email
    login = client.post("/api/auth/login", json={"email": email, "password": "long enough 1"})
    assert login.status_code == 200 and login.get_json()["access_token"]


def test_weak_password_names_the_rules(client) -> None:
    email = _email()
    short = client.post("/api/auth/register", json={"email": email, "password": "short"})
    assert short.status_code == 400
    error = short.get_json()["error"]
    assert error["field"] == "password" and error["code"] == "weak_password"
    assert f"{MIN_PASSWORD_LENGTH} to 1024 characters" in error["message"]
    same = client.post("/api/auth/register", json={"email": email, "password": email.upper()})
    assert same.status_code == 400 and "email address" in same.get_json()["error"]["message"]
    bad = client.post("/api/auth/register", json={"email": "not-an-email", "password": "x" * 12})
    assert bad.status_code == 400 and bad.get_json()["error"]["field"] == "email"
    none = client.post("/api/auth/register", json={"email": email})
    assert none.status_code == 400 and none.get_json()["error"]["field"] == "password"


def test_an_existing_account_is_not_overwritten(client, make_user) -> None:
    user, password = make_user("taken")
    again = client.post(
        "/api/auth/register", json={"email": user.email, "password": "another password"}
    )
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "email_taken"
    login = client.post("/api/auth/login", json={"email": user.email, "password": password})
    assert login.status_code == 200, "the first password still works"


def test_registration_can_be_turned_off(settings) -> None:
    from web import create_app

    closed = create_app(dataclasses.replace(settings, registration_enabled=False)).test_client()
    refused = closed.post(
        "/api/auth/register", json={"email": _email(), "password": "long enough 1"}
    )
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "registration_disabled"
