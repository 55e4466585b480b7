"""SIGTERM to a worker in the middle of a long import: it stops after a batch, loses
nothing and doubles nothing; the next worker goes on from the cursor.

A real worker imports an uploaded mbox as the account's sync, in small batches, on a
broker of its own (so the session's worker cannot take the task). It gets SIGTERM mid-
import and must exit promptly (not after the whole import), with its cursor past only
indexed batches. A second worker then finishes the import from there.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import time
from datetime import date

import pytest

from devtools.demo_mailbox import write_mbox
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.events import EventType
from shared.core.keys import RedisKeys
from shared.core.settings import ENV_PREFIX
from shared.core.task_names import MAIL_IMPORT_MBOX
from shared.identity.users import create_user
from shared.realtime.eventlog import EventLog
from shared.sync import accounts
from tests.live import start_worker

MESSAGES = 2400
BATCH = 20


def _documents(es, s, user_id: str) -> int:  # type: ignore[no-untyped-def]
    es.indices.refresh(index=s.index_alias)
    return int(es.count(index=s.index_alias, query={"term": {"owner_id": user_id}})["count"])


@pytest.mark.timeout(150)
def test_sigterm_mid_import_finishes_the_batch_and_the_next_worker_goes_on(
    settings, session_dir
) -> None:
    isolated = dataclasses.replace(
        settings, redis_url=settings.redis_url.rsplit("/", 1)[0] + "/4", import_batch_size=BATCH
    )
    env = {
        **os.environ,
        ENV_PREFIX + "REDIS_URL": isolated.redis_url,
        ENV_PREFIX + "IMPORT_BATCH_SIZE": str(BATCH),
        ENV_PREFIX + "SYNC_BATCH_SIZE": str(BATCH),
    }
    r, es = get_redis(isolated), get_elasticsearch(isolated)
    keys = RedisKeys(isolated.key_prefix)
    user = create_user(r, isolated, f"term-{secrets.token_hex(4)}@example.com", "pw-term-123")
    path = session_dir / f"term-{user.id}.mbox"
    write_mbox(path, owner_address=user.email, today=date.today(), count=MESSAGES, days=80)
    account = accounts.create_account(
        r, isolated, user.id, "mbox", path.name, {"path": str(path)}, None
    )

    from celery_app import create_celery

    first = start_worker(isolated, session_dir / "term-worker-1.log", env)
    second = None
    try:
        create_celery(isolated, with_tasks=False).send_task(
            MAIL_IMPORT_MBOX, args=[user.id, str(path)], kwargs={"account_id": account.id}
        )
        deadline = time.monotonic() + 60
        while r.hlen(keys.account_messages(account.id)) < 5 * BATCH:
            assert time.monotonic() < deadline, "the import never got going"
            time.sleep(0.02)
        first.send_signal(signal.SIGTERM)  # the main process only, as a supervisor does
        first.wait(30)  # a warm shutdown that waited for the whole import would take longer
        kept = r.hlen(keys.account_messages(account.id))
        assert kept < MESSAGES, "the worker ran the whole import instead of stopping"
        assert accounts.get_account(r, isolated, account.id).state != "syncing"
        assert not r.exists(keys.account_lock(account.id)), "the lock was released"

        second = start_worker(isolated, session_dir / "term-worker-2.log", env)
        deadline = time.monotonic() + 90
        while r.hlen(keys.account_messages(account.id)) < MESSAGES or r.exists(
            keys.account_lock(account.id)
        ):
            assert time.monotonic() < deadline, (
                f"the import did not go on: {r.hlen(keys.account_messages(account.id))}"
            )
            time.sleep(0.2)
        assert _documents(es, isolated, user.id) == MESSAGES, "lost or doubled documents"
        events = EventLog(r, isolated)
        deadline = time.monotonic() + 20
        while True:
            done = [
                e
                for e in events.read(events.user_stream(user.id), count=10_000).events
                if e.type == EventType.SYNC_DONE
            ]
            if done or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert len(done) == 1, "the import finished once, and said so once"
    finally:
        for worker in (first, second):
            if worker is not None and worker.poll() is None:
                worker.terminate()
                worker.wait(20)
