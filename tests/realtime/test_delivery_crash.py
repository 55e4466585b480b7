"""kill -9 of the Celery worker during delivery: every event arrives, exactly once."""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import time

from shared.core.clients import get_redis
from shared.core.keys import RedisKeys
from shared.core.settings import ENV_PREFIX
from shared.core.task_names import DELIVERY_SWEEP_OUTBOX
from shared.realtime.eventlog import EventLog
from tests.live import start_worker

DELIVERIES = 300


def test_worker_killed_mid_delivery_loses_and_doubles_nothing(settings, session_dir) -> None:
    from celery_app import create_celery
    from shared.realtime.delivery import Delivery, enqueue_delivery

    # A broker of its own (Redis db 1), so the session's worker cannot take these tasks.
    isolated = dataclasses.replace(
        settings,
        redis_url=settings.redis_url.rsplit("/", 1)[0] + "/1",
        broker_visibility_timeout_seconds=3,
        delivery_redeliver_after_seconds=5,
    )
    env = {
        **os.environ,
        ENV_PREFIX + "REDIS_URL": isolated.redis_url,
        ENV_PREFIX + "BROKER_VISIBILITY_TIMEOUT_SECONDS": "3",
        ENV_PREFIX + "DELIVERY_REDELIVER_AFTER_SECONDS": "5",
    }
    r = get_redis(isolated)
    events = EventLog(r, isolated)
    user_id = "u_crash_" + secrets.token_hex(4)
    stream = events.user_stream(user_id)

    doomed = start_worker(isolated, session_dir / "doomed-worker.log", env)
    client = create_celery(isolated, with_tasks=False)
    for number in range(DELIVERIES):
        delivery = Delivery("user", user_id, "notification", {"n": number}, f"crash:{number}")
        enqueue_delivery(client.send_task, r, isolated, delivery)
    deadline = time.monotonic() + 60
    while r.xlen(stream) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    os.killpg(doomed.pid, signal.SIGKILL)  # the worker and its pool, mid-stream
    doomed.wait()
    delivered_before = r.xlen(stream)
    assert 0 < delivered_before < DELIVERIES, (
        "the kill must land mid-delivery for this test to mean anything"
    )

    survivor = start_worker(isolated, session_dir / "survivor-worker.log", env)
    outbox = RedisKeys(isolated.key_prefix).delivery_outbox()
    try:
        # What the broker still holds is redelivered after its visibility timeout; what it
        # lost (popped by the killed worker, never recorded as unacknowledged) is re-sent
        # by the outbox sweep, which beat runs every 30 s and this test runs every 2 s.
        deadline = time.monotonic() + 90
        while r.hlen(outbox) and time.monotonic() < deadline:
            client.send_task(DELIVERY_SWEEP_OUTBOX)
            time.sleep(2)
        assert r.hlen(outbox) == 0, "deliveries left unsettled"
        numbers = [e.data["n"] for e in events.read(stream, count=10 * DELIVERIES).events]
        assert sorted(numbers) == list(range(DELIVERIES)), "an event was lost or doubled"
    finally:
        survivor.terminate()
        survivor.wait(20)
