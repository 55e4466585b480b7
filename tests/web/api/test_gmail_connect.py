"""Gmail over the web: OAuth connect and callback, the Pub/Sub push endpoint, watch renewal.

Google's side is the library's ``HttpMockSequence``. The app's Celery client
points at a Redis database no worker consumes, so the tests can count what
the endpoints enqueue (and no worker tries to reach Google).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import secrets
import time
import urllib.parse
from typing import Any

import pytest
import redis as redis_lib
from googleapiclient.http import HttpMockSequence

from shared.core.clients import get_redis
from shared.core.keys import RedisKeys
from shared.sync import accounts
from shared.sync.engine import SyncOptions, gmail_client
from shared.sync.providers.gmail_api import SCOPE
from shared.sync.providers.gmail_push import renew_watches
from tests.conftest import auth_header
from tests.sync import gmail_fixtures as g

PUSH_TOKEN = "push-" + secrets.token_hex(8)
TOPIC = "projects/mailchat-test/topics/gmail"
QUEUE_DB = 7


@pytest.fixture(scope="module")
def gsettings(settings):  # type: ignore[no-untyped-def]
    return dataclasses.replace(
        settings,
        gmail_client_id="cid.apps.example",
        gmail_client_secret="s3cret",
        gmail_push_token=PUSH_TOKEN,
        gmail_pubsub_topic=TOPIC,
    )


@pytest.fixture(scope="module")
def gmail_app(gsettings):  # type: ignore[no-untyped-def]
    from celery_app import create_celery
    from web import create_app
    from web.extensions import EXTENSION_KEY

    app = create_app(gsettings)
    app.config["TESTING"] = True
    base = gsettings.redis_url.rsplit("/", 1)[0]
    offline = dataclasses.replace(gsettings, redis_url=f"{base}/{QUEUE_DB}")
    app.extensions[EXTENSION_KEY] = dataclasses.replace(
        app.extensions[EXTENSION_KEY], celery=create_celery(offline, with_tasks=False)
    )
    return app


@pytest.fixture()
def queue(gsettings):  # type: ignore[no-untyped-def]
    """Task messages waiting in the unconsumed broker database's ``sync`` queue."""
    base = gsettings.redis_url.rsplit("/", 1)[0]
    client = redis_lib.Redis.from_url(f"{base}/{QUEUE_DB}")
    client.flushdb()

    def tasks() -> list[dict[str, Any]]:
        return [json.loads(m) for m in client.lrange("sync", 0, -1)]

    yield tasks
    client.flushdb()


def exchange(refresh_token: str = "1//refresh-token") -> g.Response:
    return g.ok(
        {
            "access_token": "ya29.fresh",
            "expires_in": 3599,
            "refresh_token": refresh_token,
            "scope": SCOPE,
            "token_type": "Bearer",
        }
    )


def connect(client, gsettings, user) -> str:  # type: ignore[no-untyped-def]
    response = client.get("/api/accounts/gmail/connect", headers=auth_header(gsettings, user))
    assert response.status_code == 200, response.get_json()
    url = urllib.parse.urlparse(response.get_json()["url"])
    assert url.netloc == "accounts.google.com"
    return urllib.parse.parse_qs(url.query)["state"][0]


def test_connect_returns_googles_consent_url_with_a_signed_state(
    gmail_app, gsettings, make_user
) -> None:
    user, _ = make_user("oauth")
    client = gmail_app.test_client()
    response = client.get("/api/accounts/gmail/connect", headers=auth_header(gsettings, user))
    query = urllib.parse.parse_qs(urllib.parse.urlparse(response.get_json()["url"]).query)
    assert query["scope"] == [SCOPE] and query["access_type"] == ["offline"]
    assert query["client_id"] == ["cid.apps.example"] and query["response_type"] == ["code"]
    assert query["redirect_uri"] == ["http://localhost/api/accounts/gmail/callback"]
    assert client.get("/api/accounts/gmail/connect").status_code == 401


def test_connect_without_a_client_configured_is_503(client, settings, make_user) -> None:
    user, _ = make_user("oauth-off")
    response = client.get("/api/accounts/gmail/connect", headers=auth_header(settings, user))
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "gmail_not_configured"


def test_callback_stores_an_encrypted_refresh_token_and_queues_a_sync(
    gmail_app, gsettings, make_user, queue
) -> None:
    user, _ = make_user("oauth-cb")
    client = gmail_app.test_client()
    state = connect(client, gsettings, user)
    address = f"{secrets.token_hex(4)}@gmail.com"
    google = HttpMockSequence([exchange("1//the-refresh-token"), g.profile("42", 3, address)])
    gmail_app.config["MAILCHAT_GMAIL_HTTP"] = google
    try:
        response = client.get(f"/api/accounts/gmail/callback?code=4/abc&state={state}")
        assert response.status_code == 201, response.get_json()
        body = response.get_json()["account"]
        assert (
            body["provider"] == "gmail" and body["address"] == address and body["state"] == "idle"
        )
        assert "the-refresh-token" not in response.get_data(as_text=True)
        sent = urllib.parse.parse_qs(google.request_sequence[0][2])
        assert sent["grant_type"] == ["authorization_code"] and sent["code"] == ["4/abc"]
        assert sent["redirect_uri"] == ["http://localhost/api/accounts/gmail/callback"]
        stored = get_redis(gsettings).hget(
            RedisKeys(gsettings.key_prefix).account(body["id"]), "credentials"
        )
        assert stored and "the-refresh-token" not in stored, "encrypted at rest"
        assert accounts.secret(get_redis(gsettings), gsettings, body["id"]) == {
            "refresh_token": "1//the-refresh-token"
        }
        assert [t["headers"]["task"] for t in queue()] == ["mail.sync_account"]
        listed = client.get("/api/accounts", headers=auth_header(gsettings, user)).get_data(
            as_text=True
        )
        assert "the-refresh-token" not in listed and body["id"] in listed

        # The state is single-use, and a forged one is refused.
        again = client.get(f"/api/accounts/gmail/callback?code=4/abc&state={state}")
        assert again.status_code == 400 and again.get_json()["error"]["code"] == "invalid_state"
        forged = client.get(f"/api/accounts/gmail/callback?code=4/abc&state={state[:-3]}abc")
        assert forged.status_code == 400

        # Reconnecting the same address (after needs_reauth) updates that account.
        accounts.update(
            get_redis(gsettings), gsettings, body["id"], state="needs_reauth", last_error="revoked"
        )
        gmail_app.config["MAILCHAT_GMAIL_HTTP"] = HttpMockSequence(
            [exchange("1//second"), g.profile("50", 3, address)]
        )
        state = connect(client, gsettings, user)
        response = client.get(f"/api/accounts/gmail/callback?code=4/def&state={state}")
        assert response.status_code == 200 and response.get_json()["account"]["id"] == body["id"]
        assert response.get_json()["account"]["state"] == "idle"
        assert accounts.secret(get_redis(gsettings), gsettings, body["id"]) == {
            "refresh_token": "1//second"
        }
    finally:
        gmail_app.config.pop("MAILCHAT_GMAIL_HTTP", None)


def test_callback_errors_are_clear(gmail_app, gsettings, make_user) -> None:
    user, _ = make_user("oauth-err")
    client = gmail_app.test_client()
    denied = client.get("/api/accounts/gmail/callback?error=access_denied&state=x")
    assert denied.status_code == 400 and denied.get_json()["error"]["code"] == "access_denied"
    state = connect(client, gsettings, user)
    gmail_app.config["MAILCHAT_GMAIL_HTTP"] = HttpMockSequence(
        [
            (
                {"status": "400"},
                json.dumps({"error": "invalid_grant", "error_description": "Bad Request"}),
            )
        ]
    )
    try:
        refused = client.get(f"/api/accounts/gmail/callback?code=4/old&state={state}")
    finally:
        gmail_app.config.pop("MAILCHAT_GMAIL_HTTP", None)
    assert refused.status_code == 400
    assert refused.get_json()["error"]["code"] == "oauth_failed"
    assert "Bad Request" in refused.get_json()["error"]["message"]


def test_callback_is_bound_to_the_browser_that_started_the_connect(
    gmail_app, gsettings, make_user, queue
) -> None:
    """A victim who approves an attacker's consent link does not sync into the attacker."""
    attacker, _ = make_user("oauth-attacker")
    victim, _ = make_user("oauth-victim")
    attacker_browser, victim_browser = gmail_app.test_client(), gmail_app.test_client()
    state = connect(attacker_browser, gsettings, attacker)
    connect(victim_browser, gsettings, victim)  # the victim even has a binding of their own
    google = HttpMockSequence([exchange("1//victims-token"), g.profile("7", 1, "v@gmail.com")])
    gmail_app.config["MAILCHAT_GMAIL_HTTP"] = google
    try:
        for browser in (victim_browser, gmail_app.test_client()):  # their cookie, or none
            stolen = browser.get(f"/api/accounts/gmail/callback?code=4/victim&state={state}")
            assert stolen.status_code == 400, stolen.get_json()
            assert stolen.get_json()["error"]["code"] == "state_not_bound"
        assert google.request_sequence == [], "the victim's code was never exchanged"
        assert accounts.list_accounts(get_redis(gsettings), gsettings, attacker.id) == []
        assert queue() == []
        cookie = attacker_browser.get_cookie("mailchat_gmail_oauth", path="/api/accounts/gmail")
        assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"
        assert cookie.value not in state, "the state carries only a hash of the cookie"
        # The link was not burned: the browser that started it still finishes it.
        own = attacker_browser.get(f"/api/accounts/gmail/callback?code=4/own&state={state}")
        assert own.status_code == 201, own.get_json()
    finally:
        gmail_app.config.pop("MAILCHAT_GMAIL_HTTP", None)


def push_body(address: str, history_id: int, message_id: str) -> dict[str, Any]:
    data = base64.b64encode(json.dumps({"emailAddress": address, "historyId": history_id}).encode())
    return {
        "message": {
            "data": data.decode(),
            "messageId": message_id,
            "publishTime": "2026-11-02T10:00:00Z",
        },
        "subscription": "projects/mailchat-test/subscriptions/gmail-push",
    }


def test_push_verifies_its_token_and_queues_each_change_once(
    gmail_app, gsettings, make_user, queue
) -> None:
    user, _ = make_user("push")
    address = f"{secrets.token_hex(4)}@gmail.com"
    r = get_redis(gsettings)
    account = accounts.create_account(
        r, gsettings, user.id, "gmail", address, {}, {"refresh_token": "x"}
    )
    r.hset(
        RedisKeys(gsettings.key_prefix).account_cursor(account.id),
        "gmail",
        json.dumps({"history_id": "100"}),
    )
    client = gmail_app.test_client()
    url = f"/api/gmail/push?token={PUSH_TOKEN}"

    assert (
        client.post("/api/gmail/push?token=wrong", json=push_body(address, 150, "p1")).status_code
        == 403
    )
    assert client.post("/api/gmail/push", json=push_body(address, 150, "p1")).status_code == 403
    assert client.post(url, json={"message": {"data": "not base64 json"}}).status_code == 400
    assert queue() == []

    assert client.post(url, json=push_body(address, 150, "p1")).status_code == 204
    assert [t["headers"]["task"] for t in queue()] == ["mail.sync_account"]
    assert client.post(url, json=push_body(address, 150, "p1")).status_code == 204  # redelivered
    assert (
        client.post(url, json=push_body(address, 160, "p2")).status_code == 204
    )  # burst: still queued
    assert len(queue()) == 1

    r.delete(RedisKeys(gsettings.key_prefix).account_queued(account.id))  # the task started
    assert client.post(url, json=push_body(address, 90, "p3")).status_code == 204  # already synced
    assert len(queue()) == 1
    assert client.post(url, json=push_body(address, 200, "p4")).status_code == 204
    assert len(queue()) == 2
    assert client.post(url, json=push_body("nobody@gmail.com", 5, "p5")).status_code == 204
    assert len(queue()) == 2


def test_push_is_refused_when_not_configured(client, settings) -> None:
    response = client.post("/api/gmail/push?token=", json=push_body("a@gmail.com", 1, "x"))
    assert response.status_code == 403


def test_watch_renewal_starts_watches_and_flags_revoked_tokens(gsettings, make_user) -> None:
    user, _ = make_user("watch")
    r = get_redis(gsettings)
    good = accounts.create_account(
        r, gsettings, user.id, "gmail", "w1@gmail.com", {}, {"refresh_token": "a"}
    )
    bad = accounts.create_account(
        r, gsettings, user.id, "gmail", "w2@gmail.com", {}, {"refresh_token": "b"}
    )
    expires_ms = int((time.time() + 7 * 86400) * 1000)
    mocks = {
        good.id: HttpMockSequence(
            [g.token(), g.ok({"historyId": "77", "expiration": str(expires_ms)})]
        ),
        bad.id: HttpMockSequence([g.revoked()]),
    }

    def client_for(account: accounts.Account) -> Any:
        mock = mocks.get(account.id) or HttpMockSequence(
            [g.token(), g.ok({"historyId": "1", "expiration": str(expires_ms)})]
        )
        from google_auth_httplib2 import AuthorizedHttp

        return gmail_client(
            r,
            gsettings,
            account,
            SyncOptions(gmail_http_factory=lambda c: AuthorizedHttp(c, http=mock)),
        )

    counts = renew_watches(r, gsettings, client_for)
    assert counts["renewed"] >= 1 and counts["needs_reauth"] >= 1
    renewed = accounts.get_account(r, gsettings, good.id)
    assert renewed is not None and renewed.watch_expires_at == pytest.approx(expires_ms / 1000)
    body = json.loads(mocks[good.id].request_sequence[1][2])
    assert body["topicName"] == TOPIC
    flagged = accounts.get_account(r, gsettings, bad.id)
    assert flagged is not None and flagged.state == "needs_reauth"


def test_a_new_account_gets_its_watch_after_its_first_sync(gsettings, make_user) -> None:
    from google_auth_httplib2 import AuthorizedHttp

    from shared.sync.providers.gmail_push import ensure_watch

    user, _ = make_user("watch-first")
    r = get_redis(gsettings)
    account = accounts.create_account(
        r, gsettings, user.id, "gmail", "w3@gmail.com", {}, {"refresh_token": "c"}
    )
    expires_ms = int((time.time() + 7 * 86400) * 1000)
    mock = HttpMockSequence([g.token(), g.ok({"historyId": "9", "expiration": str(expires_ms)})])

    def client_for(a: accounts.Account) -> Any:
        return gmail_client(
            r, gsettings, a, SyncOptions(gmail_http_factory=lambda c: AuthorizedHttp(c, http=mock))
        )

    assert ensure_watch(r, gsettings, account, client_for) is True
    watched = accounts.get_account(r, gsettings, account.id)
    assert watched is not None and watched.watch_expires_at
    assert ensure_watch(r, gsettings, watched, client_for) is False, "a fresh watch is left alone"
    assert len(mock.request_sequence) == 2


def test_a_browser_is_sent_back_to_the_page_with_the_outcome(
    gmail_app, gsettings, make_user, queue
) -> None:
    """Google redirects the person's browser to the callback: it lands on the page again."""
    user, _ = make_user("oauth-browser")
    client = gmail_app.test_client()
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    denied = client.get("/api/accounts/gmail/callback?error=access_denied&state=x", headers=html)
    assert denied.status_code == 303
    back = urllib.parse.urlsplit(denied.headers["Location"])
    assert back.path == "/" and urllib.parse.parse_qs(back.query)["gmail"] == ["error"]
    assert "did not grant access" in urllib.parse.parse_qs(back.query)["reason"][0]

    state = connect(client, gsettings, user)
    address = f"{secrets.token_hex(4)}@gmail.com"
    gmail_app.config["MAILCHAT_GMAIL_HTTP"] = HttpMockSequence(
        [exchange("1//browser-token"), g.profile("7", 3, address)]
    )
    try:
        done = client.get(f"/api/accounts/gmail/callback?code=4/b&state={state}", headers=html)
    finally:
        gmail_app.config.pop("MAILCHAT_GMAIL_HTTP", None)
    assert done.status_code == 303 and done.headers["Location"] == "/?gmail=connected"
    assert "browser-token" not in done.headers["Location"]
    listed = client.get("/api/accounts", headers=auth_header(gsettings, user)).get_json()
    assert [a["address"] for a in listed["accounts"]] == [address]
