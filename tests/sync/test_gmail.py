"""Gmail sync: full backfill with pagination, incremental history, 404 resync, backoff,
quota, revoked tokens, the cursor rule. Over google-api-python-client's own
``HttpMockSequence`` (see tests/gmail_fixtures.py), real Redis and noida-db."""

from __future__ import annotations

import dataclasses
import json
import secrets
from typing import Any

import pytest
from prometheus_client import REGISTRY

from shared.core.clients import get_elasticsearch, get_redis
from shared.core.keys import RedisKeys
from shared.sync import accounts
from shared.sync.engine import SyncOptions, sync_account
from shared.sync.gmail_quota import QuotaBudget, QuotaExhausted
from shared.sync.providers.base import BatchNotIndexed
from shared.sync.providers.gmail import net_changes
from shared.sync.schedule import sync_all
from tests.sync import gmail_fixtures as g


@pytest.fixture()
def gsettings(settings):  # type: ignore[no-untyped-def]
    return dataclasses.replace(
        settings, gmail_client_id="cid.apps.example", gmail_client_secret="s3cret"
    )


def gmail_account(gsettings, user_id: str):  # type: ignore[no-untyped-def]
    return accounts.create_account(
        get_redis(gsettings),
        gsettings,
        user_id,
        "gmail",
        f"{secrets.token_hex(4)}@gmail.com",
        {},
        {"refresh_token": "1//refresh-" + secrets.token_hex(8)},
    )


class Recorder:
    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.events: list[tuple[str, dict[str, Any], str]] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def notify(self, user_id: str, event_type: str, data: dict[str, Any], dedup_key: str) -> None:
        self.events.append((event_type, data, dedup_key))


def run(gsettings, account_id: str, responses: list, recorder: Recorder | None = None):  # type: ignore[no-untyped-def]
    recorder = recorder or Recorder()
    mock, factory = g.transport(responses)
    result = sync_account(
        get_redis(gsettings),
        get_elasticsearch(gsettings),
        gsettings,
        account_id,
        run_id=secrets.token_hex(4),
        notify=recorder.notify,
        options=SyncOptions(gmail_http_factory=factory, sleep=recorder.sleep, announce=True),
    )
    return result, mock


def docs(gsettings, owner_id: str) -> dict[str, dict[str, Any]]:
    es = get_elasticsearch(gsettings)
    es.indices.refresh(index=f"{gsettings.index_alias}-*")
    found = es.search(
        index=f"{gsettings.index_alias}-*", query={"term": {"owner_id": owner_id}}, size=1000
    )
    return {hit["_source"]["message_key"]: hit["_source"] for hit in found["hits"]["hits"]}


def gmail_cursor(gsettings, account_id: str) -> dict[str, Any]:
    return json.loads(accounts.cursor(get_redis(gsettings), gsettings, account_id)["gmail"])


def full_sync(gsettings, account_id: str, ids: list[str], history_id: str = "5000") -> None:
    result, mock = run(
        gsettings,
        account_id,
        [
            g.token(),
            g.profile(history_id, len(ids)),
            g.listing(ids),
            g.labels(),
            g.batch_of(*(g.message(i) for i in ids)),
            g.history([], history_id),
        ],
    )
    assert result.outcome == "ok" and result.new == len(ids)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def quota_spent(gsettings, account_id: str) -> int:
    r = get_redis(gsettings)
    pattern = RedisKeys(gsettings.key_prefix).account_quota(account_id, 0)[:-1] + "*"
    return sum(int(r.get(key) or 0) for key in r.scan_iter(match=pattern))


def test_full_sync_pages_batches_of_50_and_records_history_first(gsettings, make_user) -> None:
    user, _ = make_user("gmail-full")
    account = gmail_account(gsettings, user.id)
    first_page = [f"a{n:03x}" for n in range(100)]
    second_page = [f"b{n:03x}" for n in range(20)]
    messages = {i: g.message(i) for i in first_page + second_page}
    messages["a000"] = g.message("a000", ["INBOX", "STARRED", "Label_7"])
    recorder = Recorder()
    result, mock = run(
        gsettings,
        account.id,
        [
            g.token(),
            g.profile("5000", 120),
            g.listing(first_page, next_token="page-2", estimate=120),
            g.labels(),
            g.batch_of(*(messages[i] for i in first_page[:50])),
            g.batch_of(*(messages[i] for i in first_page[50:])),
            g.listing(second_page),
            g.batch_of(*(messages[i] for i in second_page)),
            g.history([], "5003"),
        ],
        recorder,
    )
    assert result.outcome == "ok" and result.new == 120
    assert [len(ids) for ids in g.batch_ids(mock)] == [50, 50, 20]
    sent = g.uris(mock)
    assert "/profile" in sent[1] and "/messages?" in sent[2], (
        "the historyId is recorded before listing"
    )
    assert "pageToken=page-2" in sent[6]
    assert "startHistoryId=5000" in sent[-1], "then changes made during the backfill are read"
    assert gmail_cursor(gsettings, account.id) == {"history_id": "5003"}
    found = docs(gsettings, user.id)
    assert len(found) == 120
    first = found["gmail-a000"]
    assert first["labels"] == ["Inbox", "Opened", "Recruiters", "Starred"]
    assert first["thread_id"] == "ta000" and first["subject"] == "Subject a000"
    assert found["gmail-b000"]["labels"] == ["Inbox", "Unread"]
    assert recorder.events[0][0] == "sync.progress"
    assert recorder.events[0][1]["text"] == "synced 50 of 120"
    assert recorder.events[-1][1]["text"] == "120 new emails"
    # Google's quota table: getProfile 1, messages.list 5 x 2, labels.list 1,
    # messages.get 5 x 120, history.list 2.
    assert quota_spent(gsettings, account.id) == 1 + 10 + 1 + 600 + 2
    assert accounts.message_count(get_redis(gsettings), gsettings, account.id) == 120


def test_incremental_history_applies_adds_deletions_and_label_changes(gsettings, make_user) -> None:
    user, _ = make_user("gmail-history")
    account = gmail_account(gsettings, user.id)
    full_sync(gsettings, account.id, ["m1", "m2", "m3", "m4"])
    page_one = [
        {
            "id": "5001",
            "messagesAdded": [
                {"message": {"id": "m5", "threadId": "tm5", "labelIds": ["INBOX", "UNREAD"]}}
            ],
        },
        {
            "id": "5002",
            "labelsAdded": [
                {
                    "message": {
                        "id": "m1",
                        "threadId": "tm1",
                        "labelIds": ["INBOX", "STARRED", "Label_7"],
                    },
                    "labelIds": ["STARRED", "Label_7"],
                }
            ],
        },
    ]
    page_two = [
        {"id": "5003", "messagesDeleted": [{"message": {"id": "m2", "threadId": "tm2"}}]},
        {
            "id": "5004",
            "labelsRemoved": [
                {
                    "message": {"id": "m3", "threadId": "tm3", "labelIds": ["INBOX"]},
                    "labelIds": ["UNREAD"],
                }
            ],
        },
        {
            "id": "5005",
            "messagesAdded": [{"message": {"id": "m6", "threadId": "tm6", "labelIds": ["INBOX"]}}],
        },
        {"id": "5006", "messagesDeleted": [{"message": {"id": "m6", "threadId": "tm6"}}]},
        {
            "id": "5007",
            "labelsAdded": [
                {
                    "message": {"id": "m4", "threadId": "tm4", "labelIds": ["TRASH"]},
                    "labelIds": ["TRASH"],
                }
            ],
        },
    ]
    result, mock = run(
        gsettings,
        account.id,
        [
            g.token(),
            g.history(page_one, "5010", next_token="h-2"),
            g.history(page_two, "5012"),
            g.labels(),
            g.batch_of(g.message("m5")),
        ],
    )
    assert result.outcome == "ok"
    assert (result.new, result.deleted, result.updated) == (1, 3, 2)
    assert g.batch_ids(mock) == [["m5"]], "added-then-deleted m6 is never fetched"
    assert "pageToken=h-2" in g.uris(mock)[2]
    found = docs(gsettings, user.id)
    assert set(found) == {"gmail-m1", "gmail-m3", "gmail-m5"}, "deleted and trashed mail is gone"
    assert found["gmail-m1"]["labels"] == ["Inbox", "Opened", "Recruiters", "Starred"]
    assert found["gmail-m3"]["labels"] == ["Inbox", "Opened"]
    assert gmail_cursor(gsettings, account.id) == {"history_id": "5012"}
    assert accounts.message_count(get_redis(gsettings), gsettings, account.id) == 3


def test_expired_history_resyncs_by_itself_and_sweeps_what_vanished(gsettings, make_user) -> None:
    user, _ = make_user("gmail-404")
    account = gmail_account(gsettings, user.id)
    full_sync(gsettings, account.id, ["k1", "k2"])
    result, mock = run(
        gsettings,
        account.id,
        [
            g.token(),
            g.error(404, "notFound", "Requested entity was not found.", "NOT_FOUND"),
            g.profile("9000", 1),
            g.listing(["k1"]),
            g.labels(),
            g.batch_of(g.message("k1")),
            g.history([], "9001"),
        ],
    )
    assert result.outcome == "ok" and any("expired" in note for note in result.notes)
    assert set(docs(gsettings, user.id)) == {"gmail-k1"}, "k2 was deleted while history lapsed"
    assert gmail_cursor(gsettings, account.id) == {"history_id": "9001"}


def test_rate_limits_and_server_errors_back_off_honouring_retry_after(gsettings, make_user) -> None:
    user, _ = make_user("gmail-429")
    account = gmail_account(gsettings, user.id)
    rate_before = sample("mail_sync_backoffs_total", provider="gmail", reason="rate_limit")
    server_before = sample("mail_sync_backoffs_total", provider="gmail", reason="server_error")
    status_before = sample("gmail_api_requests_total", method="getProfile", status="429")
    recorder = Recorder()
    result, mock = run(
        gsettings,
        account.id,
        [
            g.token(),
            g.error(
                429,
                "rateLimitExceeded",
                "Too many concurrent requests for user",
                "RESOURCE_EXHAUSTED",
                **{"retry-after": "7"},
            ),
            g.profile("100", 2),
            g.error(503, "backendError", "Backend Error", "UNAVAILABLE"),
            g.listing(["r1", "r2"]),
            g.labels(),
            g.batch(
                [
                    ("r1", 200, g.message("r1")),
                    (
                        "r2",
                        403,
                        json.loads(
                            g.error(
                                403,
                                "userRateLimitExceeded",
                                "User-rate limit exceeded",
                                "PERMISSION_DENIED",
                            )[1]
                        ),
                    ),
                ]
            ),
            g.batch_of(g.message("r2")),
            g.history([], "101"),
        ],
        recorder,
    )
    assert result.outcome == "ok" and set(docs(gsettings, user.id)) == {"gmail-r1", "gmail-r2"}
    assert len(recorder.sleeps) == 3
    assert recorder.sleeps[0] >= 7, "Retry-After is a floor for the backoff"
    assert g.batch_ids(mock) == [["r1", "r2"], ["r2"]], "only the rate-limited part is retried"
    assert (
        sample("mail_sync_backoffs_total", provider="gmail", reason="rate_limit") == rate_before + 2
    )
    assert (
        sample("mail_sync_backoffs_total", provider="gmail", reason="server_error")
        == server_before + 1
    )
    assert (
        sample("gmail_api_requests_total", method="getProfile", status="429") == status_before + 1
    )


def test_a_revoked_token_marks_needs_reauth_and_stops_retrying(gsettings, make_user) -> None:
    user, _ = make_user("gmail-revoked")
    account = gmail_account(gsettings, user.id)
    recorder = Recorder()
    result, _ = run(gsettings, account.id, [g.revoked()], recorder)
    assert result.outcome == "needs_reauth"
    stored = accounts.get_account(get_redis(gsettings), gsettings, account.id)
    assert stored is not None and stored.state == "needs_reauth"
    assert "revoked or expired" in (stored.last_error or "") and "reconnect" in (
        stored.last_error or ""
    )
    assert recorder.events[-1][0] == "sync.error"
    # No further call is made (an empty HttpMockSequence would raise if asked).
    again, mock = run(gsettings, account.id, [])
    assert again.outcome == "skipped" and mock.request_sequence == []
    healthy = gmail_account(gsettings, user.id)
    queued: list[str] = []
    sync_all(get_redis(gsettings), gsettings, lambda name, args, kwargs: queued.extend(args))
    assert healthy.id in queued and account.id not in queued, "beat skips needs_reauth"


def test_a_rejected_document_keeps_the_cursor_before_its_batch(gsettings, make_user) -> None:
    """Nothing a failed batch covered is skipped: the cursor stays put and the next run
    fetches the same messages again."""
    user, _ = make_user("gmail-reject")
    account = gmail_account(gsettings, user.id)
    too_long = "f" * 600  # Elasticsearch refuses document ids over 512 bytes
    with pytest.raises(BatchNotIndexed):
        run(
            gsettings,
            account.id,
            [
                g.token(),
                g.profile("700", 2),
                g.listing(["good", too_long]),
                g.labels(),
                g.batch_of(g.message("good"), g.message(too_long)),
            ],
        )
    stored = accounts.get_account(get_redis(gsettings), gsettings, account.id)
    assert stored is not None and stored.state == "error"
    assert "rejected 1 of 2" in (stored.last_error or "")
    assert gmail_cursor(gsettings, account.id) == {"full": {"history_id": "700"}}
    # The next run lists from the same place (the bad message has since gone).
    result, mock = run(
        gsettings,
        account.id,
        [
            g.token(),
            g.listing(["good"]),
            g.labels(),
            g.batch_of(g.message("good")),
            g.history([], "705"),
        ],
    )
    assert result.outcome == "ok" and "pageToken" not in g.uris(mock)[1]
    assert gmail_cursor(gsettings, account.id) == {"history_id": "705"}
    assert accounts.get_account(get_redis(gsettings), gsettings, account.id).state == "idle"  # type: ignore[union-attr]


def test_net_changes_keeps_the_last_word_per_message() -> None:
    records = [
        {"messagesAdded": [{"message": {"id": "a", "labelIds": ["INBOX"]}}]},
        {
            "labelsAdded": [
                {"message": {"id": "a", "labelIds": ["INBOX", "STARRED"]}, "labelIds": ["STARRED"]}
            ]
        },
        {"labelsAdded": [{"message": {"id": "b"}, "labelIds": ["STARRED"]}]},
        {"labelsRemoved": [{"message": {"id": "c", "labelIds": ["INBOX"]}, "labelIds": ["TRASH"]}]},
        {"messagesDeleted": [{"message": {"id": "d"}}]},
        {"labelsAdded": [{"message": {"id": "d", "labelIds": ["INBOX"]}, "labelIds": ["INBOX"]}]},
    ]
    fetch, deletes, label_sets, label_fetch = net_changes(records)
    assert fetch == ["a", "c"], "new mail and mail taken out of Trash are fetched"
    assert deletes == ["d"] and label_sets == {} and label_fetch == ["b"]


def test_quota_budget_waits_for_the_next_window_and_gives_up_past_its_limit(settings) -> None:
    tight = dataclasses.replace(settings, gmail_quota_units_per_minute=20)
    now = [1_000_000 * 60 + 10.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    account_id = "a_quota_" + secrets.token_hex(4)
    budget = QuotaBudget(get_redis(tight), tight, account_id, sleep=sleep, clock=lambda: now[0])
    budget.spend("users.messages.get", 3)  # 15 units
    budget.spend("users.messages.get")  # 20: exactly the budget
    assert slept == []
    budget.spend("users.history.list")  # over: waits for the next minute
    assert len(slept) == 1 and 49 < slept[0] <= 50.1
    assert budget.used_this_window() == 2 and budget.spent == 22
    other = QuotaBudget(
        get_redis(tight), tight, account_id, sleep=sleep, clock=lambda: now[0], max_wait=1
    )
    other.spend("users.messages.get", 3)
    with pytest.raises(QuotaExhausted):
        other.spend("users.messages.get")
    big = QuotaBudget(
        get_redis(tight), tight, "a_big_" + secrets.token_hex(4), clock=lambda: now[0]
    )
    big.spend("users.watch")  # 100 units > budget: still allowed into an empty window


def test_beat_schedule_comes_from_settings(settings) -> None:
    from celery_app import create_celery

    configured = dataclasses.replace(
        settings, sync_interval_minutes=5, gmail_pubsub_topic="projects/p/topics/t"
    )
    schedule = create_celery(configured, with_tasks=False).conf.beat_schedule
    assert schedule["mail.sync_all"]["task"] == "mail.sync_all"
    assert schedule["mail.sync_all"]["schedule"] == 300.0
    assert schedule["mail.renew_gmail_watch"]["schedule"] == 86400.0
    off = dataclasses.replace(settings, sync_interval_minutes=0, gmail_pubsub_topic="")
    schedule = create_celery(off, with_tasks=False).conf.beat_schedule
    assert "mail.sync_all" not in schedule and "mail.renew_gmail_watch" not in schedule


def test_gmail_imap_xoauth2_gets_a_fresh_access_token_with_the_imap_scope(
    gsettings, make_user
) -> None:
    import urllib.parse

    from shared.sync.engine import build_provider

    user, _ = make_user("xoauth2")
    r = get_redis(gsettings)
    config = {"host": "imap.gmail.com", "port": 993, "username": "me@gmail.com", "tls": "ssl"}
    account = accounts.create_account(
        r, gsettings, user.id, "imap", "me@gmail.com", config, {"refresh_token": "1//imap"}
    )
    mock, factory = g.transport([g.token("https://mail.google.com/")])
    provider = build_provider(r, gsettings, account, SyncOptions(gmail_http_factory=factory))
    assert provider.secret["access_token"].startswith("ya29.")  # type: ignore[attr-defined]
    body = mock.request_sequence[0][2]
    sent = urllib.parse.parse_qs(body.decode() if isinstance(body, bytes) else body)
    assert sent["grant_type"] == ["refresh_token"] and sent["refresh_token"] == ["1//imap"]
    assert "https://mail.google.com/" in sent.get("scope", [""])[0]
    revoked_mock, revoked_factory = g.transport([g.revoked()])
    result = sync_account(
        r,
        get_elasticsearch(gsettings),
        gsettings,
        account.id,
        run_id="x",
        options=SyncOptions(gmail_http_factory=revoked_factory),
    )
    assert result.outcome == "needs_reauth"


def test_an_interrupted_backfill_resumes_where_its_last_batch_ended(gsettings, make_user) -> None:
    user, _ = make_user("gmail-resume")
    account = gmail_account(gsettings, user.id)
    ids = [f"c{n:03x}" for n in range(80)]
    poison = "e" * 600  # the second batch holds a document Elasticsearch refuses
    page = ids[:50] + [poison] + ids[50:]
    with pytest.raises(BatchNotIndexed):
        run(
            gsettings,
            account.id,
            [
                g.token(),
                g.profile("800", 81),
                g.listing(page, next_token="page-2"),
                g.labels(),
                g.batch_of(*(g.message(i) for i in page[:50])),
                g.batch_of(*(g.message(i) for i in page[50:])),
            ],
        )
    assert gmail_cursor(gsettings, account.id) == {
        "full": {"history_id": "800", "page_token": None, "skip": 50}
    }
    # The listing is read again and the first 50 (already indexed) are skipped.
    listing_again = [i for i in page if i != poison]
    result, mock = run(
        gsettings,
        account.id,
        [
            g.token(),
            g.listing(listing_again, next_token="page-2"),
            g.labels(),
            g.batch_of(*(g.message(i) for i in listing_again[50:])),
            g.listing([]),
            g.history([], "801"),
        ],
    )
    assert result.outcome == "ok" and result.new == 30
    assert g.batch_ids(mock) == [listing_again[50:]]
    assert len(docs(gsettings, user.id)) == 80
    assert gmail_cursor(gsettings, account.id) == {"history_id": "801"}
