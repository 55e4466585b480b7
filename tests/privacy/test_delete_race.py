"""Delete-my-data while a real worker syncs the person's mailbox: nothing comes back.

The sync imports an uploaded mbox in small batches on a Celery worker of its
own (an isolated broker, so the session's worker cannot take the task). The
deletion lands mid-sync, with a batch in flight, and with a notification left
pending in the delivery outbox as if its task had been lost. Afterwards no
document, account key or notification log of the person exists, and neither
the running sync nor the outbox sweep recreates one.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import time
from datetime import date

import pytest

from devtools.demo_mailbox import write_mbox
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.keys import RedisKeys
from shared.core.settings import ENV_PREFIX
from shared.core.task_names import DELIVERY_SWEEP_OUTBOX, MAIL_IMPORT_MBOX
from shared.identity.users import create_user
from shared.privacy.delete_data import delete_user_data
from shared.realtime.delivery import Delivery, record_pending
from shared.sync import accounts
from tests.live import start_worker
from tests.privacy.test_delete_data import _mentions

MESSAGES = 1200
BATCH = 20


def _owner_documents(es, s, user_id: str) -> int:  # type: ignore[no-untyped-def]
    targets = f"{s.index_alias},{s.index_alias}-*"
    es.indices.refresh(index=targets)
    return int(es.count(index=targets, query={"term": {"owner_id": user_id}})["count"])


def _settle(r, keys: RedisKeys, account_id: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    """Wait until no sync holds the account's lock for a full second (or time runs out)."""
    deadline = time.monotonic() + seconds
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        if r.exists(keys.account_lock(account_id)):
            quiet_since = time.monotonic()
        elif time.monotonic() - quiet_since > 1.5:
            return
        time.sleep(0.05)


@pytest.mark.timeout(60)
def test_delete_my_data_during_a_running_sync_leaves_nothing(settings, session_dir) -> None:
    isolated = dataclasses.replace(
        settings,
        redis_url=settings.redis_url.rsplit("/", 1)[0] + "/3",
        import_batch_size=BATCH,
        delivery_redeliver_after_seconds=1,
    )
    env = {
        **os.environ,
        ENV_PREFIX + "REDIS_URL": isolated.redis_url,
        ENV_PREFIX + "IMPORT_BATCH_SIZE": str(BATCH),
        ENV_PREFIX + "DELIVERY_REDELIVER_AFTER_SECONDS": "1",
    }
    r, es = get_redis(isolated), get_elasticsearch(isolated)
    keys = RedisKeys(isolated.key_prefix)
    user = create_user(r, isolated, f"race-{secrets.token_hex(4)}@example.com", "pw-race-123")
    path = session_dir / f"race-{user.id}.mbox"
    write_mbox(path, owner_address=user.email, today=date.today(), count=MESSAGES)
    account = accounts.create_account(
        r, isolated, user.id, "mbox", path.name, {"path": str(path)}, None
    )

    from celery_app import create_celery

    worker = start_worker(isolated, session_dir / "race-worker.log", env)
    client = create_celery(isolated, with_tasks=False)
    try:
        client.send_task(
            MAIL_IMPORT_MBOX, args=[user.id, str(path)], kwargs={"account_id": account.id}
        )
        deadline = time.monotonic() + 30
        while r.hlen(keys.account_messages(account.id)) < 5 * BATCH:
            assert time.monotonic() < deadline, "the sync never got going"
            time.sleep(0.02)
        assert r.exists(keys.account_lock(account.id)), "the sync must still be running"
        # A notification whose task the broker lost: only the outbox remembers it.
        lost = Delivery(
            "user",
            user.id,
            "sync.progress",
            {"text": "synced 100"},
            f"sync:{account.id}:lost:progress",
            enqueued_at=0.0,
        )
        record_pending(r, isolated, lost, now=0.0)

        report = delete_user_data(es, r, isolated, user.id)
        assert report.accounts == 1

        # Whatever the sync had in flight has landed (or not) by now; then the sweep runs.
        _settle(r, keys, account.id, 20)
        client.send_task(DELIVERY_SWEEP_OUTBOX)
        time.sleep(2)
        assert r.hlen(keys.account_messages(account.id)) == 0
        assert _owner_documents(es, isolated, user.id) == 0, "a batch was indexed after delete"
        left = _mentions(r, isolated, {user.id, account.id})
        left.pop(keys.user_by_email(user.email), None)
        assert left == {keys.user(user.id): "name"}, left
        assert not r.exists(keys.user_events(user.id)), "a notification log came back"
        assert accounts.get_account(r, isolated, account.id) is None
        assert report.pending_deliveries >= 1
    finally:
        worker.terminate()
        worker.wait(20)
        r.delete(keys.delivery_outbox(), keys.delivery_outbox_due())
