"""Mail sync figures for ``make bench`` (issue 5).

- IMAP: sync of 10,000 messages from a local Dovecot (Debian's dovecot-imapd,
  started like the tests start it) into the index: messages per second, and
  the time of the next, nothing-new sync.
- Gmail API: quota units and HTTP round trips per 1,000 new messages, for a
  full sync and an incremental one (batches of 50 ``messages.get``), against
  one ``messages.get`` per message without batching. Google cannot be reached
  from here, so Google's side is google-api-python-client's own
  ``HttpMockSequence`` serving API-shaped responses (tests/gmail_fixtures.py);
  units are what Mailchat's Redis quota budget charged, from Google's table.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.results import Figure
from devtools.demo_mailbox import write_mbox
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.identity.users import create_user
from shared.mail.mbox import iter_mbox
from shared.sync import accounts
from shared.sync.engine import SyncOptions, sync_account
from shared.sync.gmail_quota import QuotaBudget
from shared.sync.providers.gmail_api import GmailApi, credentials

IMAP_MESSAGES = 10_000
GMAIL_MESSAGES = 1_000
IMAP_USER = "bench"


def _fill_maildir(root: Path, user: str, workdir: Path) -> int:
    """Write the messages straight into the user's Maildir ``new/`` (Dovecot assigns UIDs
    on first SELECT): 10,000 IMAP APPENDs would measure APPEND, not sync."""
    mbox = workdir / "imap-bench.mbox"
    write_mbox(
        mbox,
        owner_address="bench@example.com",
        today=datetime.now(UTC).date(),
        count=IMAP_MESSAGES,
        days=60,  # inside the 90-day retention: older mail is skipped, not synced
    )
    maildir = root / "mail" / user
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    count = 0
    for count, message in enumerate(iter_mbox(mbox), start=1):
        (maildir / "new" / f"{1700000000 + count}.M{count}P1.bench").write_bytes(message.raw)
    for path in [maildir, *maildir.iterdir(), *(maildir / "new").iterdir()]:
        shutil.chown(path, user="mail", group="mail")
    mbox.unlink()
    return count


def bench_imap(settings: Settings, workdir: Path) -> list[Figure]:
    try:
        from tests.sync.dovecot import DovecotMissing, start_dovecot
    except ImportError:
        return [_skipped("tests/sync/dovecot.py not importable")]
    try:
        server = start_dovecot()
    except DovecotMissing as exc:
        return [_skipped(str(exc))]
    # The bench's Dovecot listens on loopback, which IMAP accounts may only use when allowed.
    settings = dataclasses.replace(settings, imap_allow_private_hosts=True)
    try:
        written = _fill_maildir(server.root, IMAP_USER, workdir)
        r, es = get_redis(settings), get_elasticsearch(settings)
        user = create_user(r, settings, "imap-bench@example.com", "bench-password")
        config = {
            "host": server.host,
            "port": server.port,
            "username": IMAP_USER,
            "tls": "none",
            "folders": [],
        }
        account = accounts.create_account(
            r, settings, user.id, "imap", IMAP_USER, config, {"password": server.password}
        )
        started = time.perf_counter()
        result = sync_account(r, es, settings, account.id, run_id="bench-imap")
        elapsed = time.perf_counter() - started
        again = time.perf_counter()
        quiet = sync_account(r, es, settings, account.id, run_id="bench-imap-2")
        quiet_elapsed = time.perf_counter() - again
    finally:
        server.stop()
    assert result.outcome == "ok" and result.new == written, result
    detail = {"messages": written, "batch": settings.sync_batch_size}
    return [
        Figure("mail_sync.imap_rate", round(written / elapsed), "messages/s", detail=detail),
        Figure(
            "mail_sync.imap_nothing_new",
            round(quiet_elapsed, 2),
            "s",
            detail={**detail, "fetched": quiet.new},
        ),
    ]


def _skipped(why: str) -> Figure:
    """A figure that could not be measured here, with the reason (Dovecot is a Debian package)."""
    return Figure("mail_sync.imap_rate", None, "messages/s", detail={"skipped": why})


def _units(settings: Settings, account_id: str) -> int:
    r = get_redis(settings)
    pattern = RedisKeys(settings.key_prefix).account_quota(account_id, 0)[:-1] + "*"
    return sum(int(r.get(key) or 0) for key in r.scan_iter(match=pattern))


def bench_gmail(settings: Settings) -> list[Figure]:
    from google_auth_httplib2 import AuthorizedHttp

    from tests.sync import gmail_fixtures as g

    configured = _gmail_settings(settings)
    r, es = get_redis(configured), get_elasticsearch(configured)
    user = create_user(r, configured, "gmail-bench@example.com", "bench-password")
    ids = [f"{n:016x}" for n in range(1, GMAIL_MESSAGES + 1)]
    messages = [g.message(i) for i in ids]
    half = GMAIL_MESSAGES // 2
    full = [g.token(), g.profile("1000", GMAIL_MESSAGES)]
    for page, chunk in enumerate((ids[:half], ids[half:])):
        full.append(
            g.listing(chunk, next_token="p2" if page == 0 else None, estimate=GMAIL_MESSAGES)
        )
        if page == 0:
            full.append(g.labels())
        base = page * half
        full += [g.batch_of(*messages[base + i : base + i + 50]) for i in range(0, half, 50)]
    full.append(g.history([], "1001"))

    def run(responses: list[Any]) -> tuple[str, int, int]:
        account = accounts.create_account(
            r, configured, user.id, "gmail", "bench@gmail.com", {}, {"refresh_token": "bench"}
        )
        mock, factory = g.transport(responses)
        result = sync_account(
            r,
            es,
            configured,
            account.id,
            run_id="bench-gmail",
            options=SyncOptions(gmail_http_factory=factory),
        )
        assert result.outcome == "ok" and result.new == GMAIL_MESSAGES, result
        return account.id, _units(configured, account.id), len(mock.request_sequence) - 1

    _, full_units, full_requests = run(full)

    added = [
        {"id": str(2000 + n), "messagesAdded": [{"message": {"id": i, "labelIds": ["INBOX"]}}]}
        for n, i in enumerate(ids)
    ]
    incremental_account = accounts.create_account(
        r, configured, user.id, "gmail", "bench2@gmail.com", {}, {"refresh_token": "bench"}
    )
    r.hset(
        RedisKeys(configured.key_prefix).account_cursor(incremental_account.id),
        "gmail",
        '{"history_id": "1999"}',
    )
    responses = [
        g.token(),
        g.history(added[:half], "3000", next_token="h2"),
        g.history(added[half:], "3001"),
        g.labels(),
    ]
    responses += [g.batch_of(*messages[i : i + 50]) for i in range(0, GMAIL_MESSAGES, 50)]
    mock, factory = g.transport(responses)
    result = sync_account(
        r,
        es,
        configured,
        incremental_account.id,
        run_id="bench-gmail-2",
        options=SyncOptions(gmail_http_factory=factory),
    )
    assert result.outcome == "ok" and result.new == GMAIL_MESSAGES, result
    incremental_units = _units(configured, incremental_account.id)
    incremental_requests = len(mock.request_sequence) - 1

    # The same 1,000 messages fetched one messages.get each, through the same client.
    single = g.transport([g.token(), *(g.ok(m) for m in messages)])[0]
    budget = QuotaBudget(r, configured, "a_bench_unbatched")
    api = GmailApi(AuthorizedHttp(credentials(configured, "bench"), http=single), budget)
    for message_id in ids:
        api.call(
            "users.messages.get", api.users.messages().get(userId="me", id=message_id, format="raw")
        )
    per = 1000 / GMAIL_MESSAGES
    unbatched = "one messages.get per message"
    # Google charges per call inside a batch too: batching saves round trips, not units.
    return [
        Figure(
            "mail_sync.gmail_full_units_per_1k",
            round(full_units * per),
            "units",
            peer=round(budget.spent * per),
            peer_name=unbatched,
        ),
        Figure(
            "mail_sync.gmail_full_requests_per_1k",
            round(full_requests * per),
            "requests",
            peer=round(api.http_requests * per),
            peer_name=unbatched,
        ),
        Figure("mail_sync.gmail_incremental_units_per_1k", round(incremental_units * per), "units"),
        Figure(
            "mail_sync.gmail_incremental_requests_per_1k",
            round(incremental_requests * per),
            "requests",
            peer=round(api.http_requests * per),
            peer_name=unbatched,
        ),
    ]


def _gmail_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, gmail_client_id="bench", gmail_client_secret="bench")


def bench_mail_sync(settings: Settings, workdir: Path) -> list[Figure]:
    """Both figures; each part bounded (10,000 IMAP messages, 1,000 Gmail messages)."""
    return bench_imap(settings, workdir) + bench_gmail(settings)
