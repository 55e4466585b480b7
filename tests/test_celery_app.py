"""celery_app: which broker lease a worker gets, and what it means for a killed worker."""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from pathlib import Path

import pytest

from celery_app import app, broker_transport_options, longest_task_seconds
from shared.core.clients import get_redis
from shared.core.keys import SHORT_LEASE_BROKER_KEYS
from shared.core.settings import ENV_PREFIX, Settings
from shared.core.task_names import ALL_QUEUES, ASSISTANT_ANSWER, QUEUE_SEARCH, SHORT_QUEUES
from tests.live import start_worker


def test_a_worker_on_the_search_queue_alone_gets_the_short_lease_under_its_own_keys() -> None:
    settings = Settings.from_env({})
    options = broker_transport_options(settings, [QUEUE_SEARCH])
    assert options["visibility_timeout"] == settings.search_visibility_timeout_seconds == 60
    assert options["unacked_restore_interval"] <= 10 and options["unacked_restore_throttle"] == 1
    for name, key in SHORT_LEASE_BROKER_KEYS.items():
        assert options[name] == key and key not in ("unacked", "unacked_index", "unacked_mutex")


@pytest.mark.parametrize("queues", [None, list(ALL_QUEUES), ["search", "sync"], ["sync"]])
def test_any_other_process_keeps_the_long_lease_and_kombus_keys(queues) -> None:  # type: ignore[no-untyped-def]
    """A sync task runs up to an hour: a shorter lease would deliver it twice while it runs."""
    settings = Settings.from_env({})
    options = broker_transport_options(settings, queues)
    assert options["visibility_timeout"] == settings.broker_visibility_timeout_seconds == 3600
    assert not set(SHORT_LEASE_BROKER_KEYS) & set(options)


def test_the_default_short_lease_outlasts_every_task_on_the_short_queues() -> None:
    """Else a live answer would be redelivered and run twice (harmless, but wasted work)."""
    app.loader.import_default_modules()  # what a worker does before it connects
    longest = longest_task_seconds(app, SHORT_QUEUES)
    assert app.tasks[ASSISTANT_ANSWER].time_limit, "the answer task needs a hard time limit"
    assert 0 < longest < Settings.from_env({}).search_visibility_timeout_seconds, longest


@pytest.mark.timeout(90)
def test_a_killed_search_worker_s_message_is_redelivered_after_the_short_lease(
    settings, session_dir: Path
) -> None:
    """kill -9 of a worker's main process leaves its message unacknowledged in Redis.

    The search worker keeps it under its own keys; a new search worker puts it
    back once it is older than the short lease, and takes it again.
    """
    lease = 3
    isolated = dataclasses.replace(
        settings,
        redis_url=settings.redis_url.rsplit("/", 1)[0] + "/5",  # a broker of its own
        search_visibility_timeout_seconds=lease,
    )
    env = {
        **os.environ,
        ENV_PREFIX + "REDIS_URL": isolated.redis_url,
        ENV_PREFIX + "SEARCH_VISIBILITY_TIMEOUT_SECONDS": str(lease),
    }
    r = get_redis(isolated)
    r.flushdb()
    log_path = session_dir / f"short-lease-{time.monotonic_ns()}.log"
    doomed = start_worker(isolated, log_path, env, concurrency=1, queues=(QUEUE_SEARCH,))
    pool = [int(p) for p in os.popen(f"pgrep -P {doomed.pid}").read().split()]
    assert pool, "the worker has no pool process"
    for child in pool:
        os.kill(child, signal.SIGSTOP)  # the message is taken but cannot run
    from celery_app import create_celery

    client = create_celery(isolated, with_tasks=False)
    client.send_task(ASSISTANT_ANSWER, kwargs={"probe": "short-lease"})
    short, long_ = SHORT_LEASE_BROKER_KEYS["unacked_key"], "unacked"
    deadline = time.monotonic() + 20
    while not r.hlen(short) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert r.hlen(short) == 1 and r.hlen(long_) == 0, "held under the short lease's own keys"
    os.kill(doomed.pid, signal.SIGKILL)  # the main process only: its pool dies with it
    doomed.wait()
    assert r.hlen(short) == 1, "nobody acknowledged or put back the message"

    killed_at = time.monotonic()
    survivor = start_worker(isolated, log_path, env, concurrency=1, queues=(QUEUE_SEARCH,))
    try:
        # Put back on the queue once older than the lease, taken again and acknowledged:
        # neither the unacknowledged set nor the queue holds it any more.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (r.hlen(short) or r.llen(QUEUE_SEARCH)):
            time.sleep(0.2)
        taken_again = time.monotonic() - killed_at
        assert not r.hlen(short) and not r.llen(QUEUE_SEARCH), "never redelivered"
        assert taken_again < lease + 20, f"redelivered {taken_again:.0f}s after the kill"
    finally:
        survivor.terminate()
        survivor.wait(20)
        r.flushdb()


def test_the_web_s_client_sends_without_subscribing_to_a_result(settings) -> None:  # type: ignore[no-untyped-def]
    """Issue 14 (chat): every question built a result backend, a Redis pool, a connection
    and a pub/sub subscription in the web process, though nobody there reads results."""
    import threading
    import uuid

    from celery_app import SendingClient, create_celery

    client = create_celery(settings, with_tasks=False)
    assert isinstance(client, SendingClient)
    r = get_redis(settings)
    queue = f"test-sending-{uuid.uuid4().hex[:8]}"
    task_id = f"t-{uuid.uuid4().hex}"
    try:
        result = client.send_task("tests.nothing", task_id=task_id, queue=queue)
        assert result.ignored is True
        assert r.llen(queue) == 1  # sent, on the broker
        subscribed = {c.decode() if isinstance(c, bytes) else c for c in r.pubsub_channels()}
        assert not any(task_id in channel for channel in subscribed), subscribed
        seen: list[object] = []
        threads = [threading.Thread(target=lambda: seen.append(client.backend)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(backend is client.backend for backend in seen)  # one per process
        # A caller that does want the result still gets it asked for.
        wanted = client.send_task("tests.nothing", queue=queue, ignore_result=False)
        assert wanted.ignored is False
    finally:
        r.delete(queue)
