"""kill -9 of the Celery worker during delivery: every event arrives, exactly once."""

from __future__ import annotations

import dataclasses
import os
import secrets
import signal
import time

from shared.clients import get_redis
from shared.eventlog import EventLog
from shared.settings import ENV_PREFIX
from shared.task_names import DELIVERY_DELIVER
from tests.live import start_worker

DELIVERIES = 300


def test_worker_killed_mid_delivery_loses_and_doubles_nothing(settings, session_dir) -> None:
    from celery_app import create_celery

    # A broker of its own (Redis db 1), so the session's worker cannot take these tasks.
    isolated = dataclasses.replace(
        settings,
        redis_url=settings.redis_url.rsplit("/", 1)[0] + "/1",
        broker_visibility_timeout_seconds=3,
    )
    env = {
        **os.environ,
        ENV_PREFIX + "REDIS_URL": isolated.redis_url,
        ENV_PREFIX + "BROKER_VISIBILITY_TIMEOUT_SECONDS": "3",
    }
    r = get_redis(isolated)
    events = EventLog(r, isolated)
    user_id = "u_crash_" + secrets.token_hex(4)
    stream = events.user_stream(user_id)

    doomed = start_worker(isolated, session_dir / "doomed-worker.log", env)
    client = create_celery(isolated, with_tasks=False)
    for number in range(DELIVERIES):
        client.send_task(
            DELIVERY_DELIVER,
            kwargs={
                "target": "user",
                "target_id": user_id,
                "event_type": "notification",
                "data": {"n": number},
                "dedup_key": f"crash:{number}",
            },
        )
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
    try:
        deadline = time.monotonic() + 90
        while r.xlen(stream) < DELIVERIES and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(4)  # past one more visibility timeout: any redelivery would have landed
        numbers = [e.data["n"] for e in events.read(stream, count=10 * DELIVERIES).events]
        assert sorted(numbers) == list(range(DELIVERIES)), "an event was lost or doubled"
    finally:
        survivor.terminate()
        survivor.wait(20)
