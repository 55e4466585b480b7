"""The IMAP form's "Test connection" against the session's real Dovecot: a working login lists
the folders; a wrong password, a missing host, a TLS mismatch, a refused port and a blocked
private address each come back within 10 s with a reason and the field to fix, and the
password never appears in the answer or the logs."""

from __future__ import annotations

import time

import pytest

from devtools.servers import free_port
from tests.conftest import auth_header
from tests.sync.test_imap import Mailbox
from tests.web.api.test_accounts import account_body

DEADLINE_SECONDS = 10.0


@pytest.fixture()
def box(dovecot):  # type: ignore[no-untyped-def]
    mailbox = Mailbox(dovecot)
    yield mailbox
    mailbox.close()


def check(client, headers, body):  # type: ignore[no-untyped-def]
    started = time.monotonic()
    response = client.post("/api/accounts/imap/test", json=body, headers=headers)
    assert time.monotonic() - started < DEADLINE_SECONDS, "answered within 10 s"
    return response


@pytest.mark.timeout(60)
def test_test_connection_names_the_reason(mail_app, settings, make_user, box, caplog) -> None:
    user, _ = make_user("imap-test")
    headers = auth_header(settings, user)
    client = mail_app.test_client()

    good = check(client, headers, account_body(box))
    assert good.status_code == 200 and good.get_json()["ok"] is True
    assert "INBOX" in good.get_json()["folders"]

    secret = "not-the-password-7f3a9"
    wrong = check(client, headers, account_body(box, password=secret))
    answer = wrong.get_json()
    assert wrong.status_code == 200 and answer["ok"] is False
    assert answer["code"] == "wrong_password" and answer["field"] == "password"
    assert "password" in answer["message"]
    assert secret not in wrong.get_data(as_text=True)

    nohost = check(client, headers, account_body(box, host="no-such-host.invalid", tls="starttls"))
    assert nohost.get_json()["code"] == "no_such_host"
    assert nohost.get_json()["field"] == "host"

    tls = check(client, headers, account_body(box, tls=True))  # Dovecot here is plain
    assert tls.get_json()["code"] in ("tls_failed", "imap_error"), tls.get_json()
    assert tls.get_json()["field"] == "tls"

    closed = check(client, headers, account_body(box, port=free_port()))
    assert closed.get_json()["code"] == "connection_refused"

    assert secret not in caplog.text, "the password never reaches a log"


def test_a_private_address_is_refused_when_not_allowed(client, settings, make_user) -> None:
    user, _ = make_user("imap-private")
    response = client.post(
        "/api/accounts/imap/test",
        json={"host": "127.0.0.1", "port": 993, "username": "u", "password": "p", "tls": True},
        headers=auth_header(settings, user),
    )
    assert response.status_code == 200
    answer = response.get_json()
    assert answer["ok"] is False and answer["code"] == "host_not_allowed"
    assert answer["field"] == "host" and "loopback" in answer["message"]
    malformed = client.post(
        "/api/accounts/imap/test",
        json={"host": "imap.example.com", "port": 0, "username": "u", "password": "p"},
        headers=auth_header(settings, user),
    )
    assert malformed.status_code == 400 and malformed.get_json()["error"]["field"] == "port"
