"""The accounts API end to end: add an IMAP account (real Dovecot), the real Celery
worker syncs it, progress reaches the notification log, sync now, delete; validation,
ownership, and credentials that are encrypted at rest and never returned."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
from cryptography.fernet import Fernet

from shared.core.clients import get_elasticsearch, get_redis
from shared.core.keys import RedisKeys
from shared.core.locks import RedisLock
from shared.realtime.eventlog import EventLog
from shared.sync import accounts
from shared.sync.accounts import decrypt_secret, encrypt_secret
from tests.conftest import auth_header
from tests.sync.test_imap import Mailbox, make_message

WAIT_SECONDS = 90


def wait_for(predicate: Any, what: str) -> Any:
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"gave up waiting for {what}")


def user_events(settings, user_id: str) -> list[Any]:  # type: ignore[no-untyped-def]
    log = EventLog(get_redis(settings), settings)
    return log.read(log.user_stream(user_id)).events


def owner_count(settings, owner_id: str) -> int:  # type: ignore[no-untyped-def]
    es = get_elasticsearch(settings)
    es.indices.refresh(index=f"{settings.index_alias}-*")
    return int(
        es.count(index=f"{settings.index_alias}-*", query={"term": {"owner_id": owner_id}})["count"]
    )


def account_body(mailbox: Mailbox, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "imap",
        "host": mailbox.server.host,
        "port": mailbox.server.port,
        "username": mailbox.username,
        "password": mailbox.server.password,
        "tls": False,
        **extra,
    }


@pytest.fixture()
def mailbox(dovecot):  # type: ignore[no-untyped-def]
    box = Mailbox(dovecot)
    yield box
    box.close()


def test_add_sync_list_sync_now_and_delete_through_the_worker(
    mail_app, settings, make_user, mailbox, celery_worker
) -> None:
    user, _ = make_user("api-imap")
    headers = auth_header(settings, user)
    client = mail_app.test_client()
    for n in range(3):
        mailbox.append("INBOX", make_message(f"Interview {n}", f"api{n}-{mailbox.username}@x"))

    created = client.post("/api/accounts", json=account_body(mailbox), headers=headers)
    assert created.status_code == 201, created.get_json()
    account = created.get_json()["account"]
    assert account["provider"] == "imap" and account["state"] in ("idle", "syncing")
    assert mailbox.server.password not in created.get_data(as_text=True)

    def synced(count: int) -> Any:
        listed = client.get("/api/accounts", headers=headers).get_json()["accounts"]
        found = [a for a in listed if a["id"] == account["id"]]
        done = found and found[0]["last_success_at"] and found[0]["message_count"] == count
        return found[0] if done and found[0]["state"] == "idle" else None

    status = wait_for(lambda: synced(3), "the first sync")
    assert status["last_error"] is None and status["lag_seconds"] >= 0
    assert (
        status["settings"]["host"] == mailbox.server.host and "password" not in status["settings"]
    )
    assert owner_count(settings, user.id) == 3
    done = wait_for(
        lambda: [e for e in user_events(settings, user.id) if e.type == "sync.done"], "sync.done"
    )
    assert done[0].data["text"] == "3 new emails" and done[0].data["account_id"] == account["id"]

    listing = client.get("/api/accounts", headers=headers).get_data(as_text=True)
    assert mailbox.server.password not in listing and "credentials" not in listing
    raw = get_redis(settings).hget(
        RedisKeys(settings.key_prefix).account(account["id"]), "credentials"
    )
    assert raw and mailbox.server.password not in raw, "the password is encrypted at rest"

    mailbox.append("INBOX", make_message("Offer", f"offer-{mailbox.username}@x"))
    queued = client.post(f"/api/accounts/{account['id']}/sync", headers=headers)
    assert queued.status_code == 202 and queued.get_json()["queued"] is True
    wait_for(lambda: synced(4), "the sync asked for")
    assert owner_count(settings, user.id) == 4

    deleted = client.delete(f"/api/accounts/{account['id']}", headers=headers)
    assert deleted.status_code == 200 and deleted.get_json()["documents_deleted"] == 4
    assert owner_count(settings, user.id) == 0
    r = get_redis(settings)
    keys = RedisKeys(settings.key_prefix)
    assert list(r.scan_iter(match=keys.account_prefix(account["id"]) + "*")) == []
    assert not r.exists(keys.account(account["id"]))
    assert client.get("/api/accounts", headers=headers).get_json()["accounts"] == []


def test_delete_during_a_sync_is_left_to_the_sync(mail_app, settings, make_user, mailbox) -> None:
    from shared.sync.engine import sync_account

    user, _ = make_user("api-delete-busy")
    headers = auth_header(settings, user)
    client = mail_app.test_client()
    mailbox.append("INBOX", make_message("busy", f"busy-{mailbox.username}@x"))
    r = get_redis(settings)
    # Created directly (no sync queued for the worker): this test holds the lock itself.
    config = {k: v for k, v in account_body(mailbox).items() if k in ("host", "port", "username")}
    created = accounts.create_account(
        r,
        settings,
        user.id,
        "imap",
        mailbox.username,
        {**config, "tls": "none"},
        {"password": mailbox.server.password},
    )
    account = {"id": created.id}
    loopback = dataclasses.replace(settings, imap_allow_private_hosts=True)  # Dovecot's address
    warm = sync_account(r, get_elasticsearch(settings), loopback, created.id, run_id="warm")
    assert warm.new == 1 and owner_count(settings, user.id) == 1
    keys = RedisKeys(settings.key_prefix)
    lock = RedisLock(r, keys.account_lock(account["id"]), 30)
    assert lock.acquire()
    try:
        response = client.delete(f"/api/accounts/{account['id']}", headers=headers)
        assert response.status_code == 202 and response.get_json()["deleting"] is True
    finally:
        lock.release()
    # Whichever sync takes the lock next deletes the account instead of syncing it.
    result = sync_account(r, get_elasticsearch(settings), loopback, account["id"], run_id="del")
    assert result.outcome in ("deleted", "missing")
    assert not r.exists(keys.account(account["id"]))
    assert owner_count(settings, user.id) == 0


@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        ({"host": ""}, "host", "invalid_field"),
        ({"port": 0}, "port", "invalid_field"),
        ({"port": "993"}, "port", "invalid_field"),
        ({"tls": "maybe"}, "tls", "invalid_field"),
        ({"folders": "INBOX"}, "folders", "invalid_field"),
        ({"password": ""}, "password", "invalid_field"),
        ({"provider": "pop3"}, "provider", "invalid_field"),
        ({"provider": "gmail"}, "provider", "use_oauth"),
        ({"host": "93.184.216.34", "tls": False}, "tls", "tls_required"),
    ],
)
def test_bad_account_requests_name_the_field(
    mail_app, settings, make_user, change, field, code
) -> None:
    user, _ = make_user("api-bad")
    body = {
        "provider": "imap",
        "host": "127.0.0.1",
        "port": 143,
        "username": "u",
        "password": "p",
        "tls": False,
    }
    response = mail_app.test_client().post(
        "/api/accounts", json={**body, **change}, headers=auth_header(settings, user)
    )
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert (error["field"], error["code"]) == (field, code)


def test_private_hosts_are_refused_unless_allowed(client, settings, make_user) -> None:
    user, _ = make_user("api-private")
    body = {
        "provider": "imap",
        "host": "127.0.0.1",
        "port": 143,
        "username": "u",
        "password": "p",
        "tls": False,
    }
    response = client.post("/api/accounts", json=body, headers=auth_header(settings, user))
    assert (
        response.status_code == 400 and response.get_json()["error"]["code"] == "host_not_allowed"
    )


def test_accounts_are_private_to_their_owner(mail_app, settings, make_user, mailbox) -> None:
    owner, _ = make_user("api-owner")
    other, _ = make_user("api-other")
    client = mail_app.test_client()
    account = client.post(
        "/api/accounts", json=account_body(mailbox), headers=auth_header(settings, owner)
    ).get_json()["account"]
    duplicate = client.post(
        "/api/accounts", json=account_body(mailbox), headers=auth_header(settings, owner)
    )
    assert duplicate.status_code == 409
    for method, path in (
        ("post", f"/api/accounts/{account['id']}/sync"),
        ("delete", f"/api/accounts/{account['id']}"),
        ("patch", f"/api/accounts/{account['id']}"),
    ):
        response = getattr(client, method)(
            path, json={"password": "x"}, headers=auth_header(settings, other)
        )
        assert response.status_code == 404, (method, path)
        assert getattr(client, method)(path, json={}).status_code == 401
    assert (
        client.get("/api/accounts", headers=auth_header(settings, other)).get_json()["accounts"]
        == []
    )
    assert client.get("/api/accounts").status_code == 401


def test_needs_reauth_blocks_sync_now_until_the_password_is_updated(
    mail_app, settings, make_user, mailbox
) -> None:
    user, _ = make_user("api-reauth")
    headers = auth_header(settings, user)
    client = mail_app.test_client()
    # Created directly, so no queued sync races this test's state changes.
    created = accounts.create_account(
        get_redis(settings),
        settings,
        user.id,
        "imap",
        mailbox.username,
        {"host": mailbox.server.host, "port": mailbox.server.port, "username": mailbox.username},
        {"password": "old"},
    )
    account = {"id": created.id}
    accounts.update(
        get_redis(settings), settings, account["id"], state="needs_reauth", last_error="refused"
    )
    blocked = client.post(f"/api/accounts/{account['id']}/sync", headers=headers)
    assert blocked.status_code == 409 and blocked.get_json()["error"]["code"] == "needs_reauth"
    fixed = client.patch(
        f"/api/accounts/{account['id']}", json={"password": "new-password"}, headers=headers
    )
    # No longer needs_reauth (the worker may already be syncing it again).
    assert fixed.status_code == 200 and fixed.get_json()["account"]["state"] in ("idle", "syncing")
    assert "new-password" not in fixed.get_data(as_text=True)
    assert accounts.secret(get_redis(settings), settings, account["id"]) == {
        "password": "new-password"
    }


def test_credentials_key_rotation_keeps_old_secrets_readable(settings, tmp_path) -> None:
    old_key, new_key = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    old = dataclasses.replace(settings, credentials_key=old_key)
    token = encrypt_secret(old, {"password": "hunter2"})
    assert "hunter2" not in token
    rotated = dataclasses.replace(settings, credentials_key=f"{new_key},{old_key}")
    assert decrypt_secret(rotated, token) == {"password": "hunter2"}
    assert decrypt_secret(rotated, encrypt_secret(rotated, {"a": "b"})) == {"a": "b"}
    with pytest.raises(accounts.AccountError, match="cannot be decrypted"):
        decrypt_secret(dataclasses.replace(settings, credentials_key=new_key), token)
    generated = dataclasses.replace(settings, credentials_key="", data_dir=str(tmp_path))
    assert decrypt_secret(generated, encrypt_secret(generated, {"k": "v"})) == {"k": "v"}
    assert (tmp_path / "credentials_key").stat().st_mode & 0o077 == 0, "the key file is private"


def test_a_paused_account_does_not_sync_until_resumed(
    mail_app, settings, make_user, mailbox, celery_worker
) -> None:
    from shared.core.clients import get_elasticsearch
    from shared.sync.engine import sync_account

    user, _ = make_user("api-pause")
    headers = auth_header(settings, user)
    client = mail_app.test_client()
    mailbox.append("INBOX", make_message("Interview 0", f"pause0-{mailbox.username}@x"))
    created = client.post("/api/accounts", json=account_body(mailbox), headers=headers)
    account_id = created.get_json()["account"]["id"]

    def count_idle() -> Any:
        listed = client.get("/api/accounts", headers=headers).get_json()["accounts"][0]
        return listed if listed["state"] == "idle" and listed["last_success_at"] else None

    wait_for(count_idle, "the first sync")
    paused = client.post(f"/api/accounts/{account_id}/pause", headers=headers)
    assert paused.status_code == 200 and paused.get_json()["account"]["paused"] is True
    mailbox.append("INBOX", make_message("Offer", f"pause1-{mailbox.username}@x"))
    refused = client.post(f"/api/accounts/{account_id}/sync", headers=headers)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "paused"
    # Beat's scheduled sync runs the engine; a paused account is left alone.
    r, es = get_redis(settings), get_elasticsearch(settings)
    result = sync_account(r, es, settings, account_id, run_id="scheduled-while-paused")
    assert result.outcome == "paused" and owner_count(settings, user.id) == 1

    resumed = client.post(f"/api/accounts/{account_id}/resume", headers=headers)
    assert resumed.status_code == 202 and resumed.get_json()["account"]["paused"] is False
    wait_for(lambda: owner_count(settings, user.id) == 2 or None, "the sync after resuming")
    other, _ = make_user("api-pause-other")
    foreign = client.post(f"/api/accounts/{account_id}/pause", headers=auth_header(settings, other))
    assert foreign.status_code == 404
