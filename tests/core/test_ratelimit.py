"""Rate limits on Redis (``limits``): windows, costs, refusals counted, socket slots."""

from __future__ import annotations

import dataclasses
import secrets
import time

import pytest

from shared.core import metrics
from shared.core.clients import get_redis
from shared.core.ratelimit import RateLimits, SocketSlots

pytestmark = pytest.mark.timeout(30)


def refusals(limit: str) -> float:
    return metrics.HTTP_RATE_LIMITED.labels(limit=limit)._value.get()  # type: ignore[attr-defined]


def test_spend_refuses_beyond_every_window_and_a_refusal_costs_nothing(settings) -> None:
    limits = RateLimits(settings)
    subject = secrets.token_hex(6)
    before = refusals("ask")
    decisions = [limits.spend("ask", "3 per minute;4 per hour", subject) for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert 1 <= decisions[-1].retry_after_seconds <= 60
    assert refusals("ask") == before + 1
    # Another person has their own budget.
    assert limits.spend("ask", "3 per minute;4 per hour", secrets.token_hex(6)).allowed
    # The counters live in Redis under the project's prefix (shared by every process).
    found = list(get_redis(settings).scan_iter(match=f"{settings.key_prefix}rate*{subject}*"))
    assert found and all(get_redis(settings).ttl(k) > 0 for k in found)


def test_spend_with_a_cost_counts_bytes(settings) -> None:
    limits = RateLimits(settings)
    subject = secrets.token_hex(6)
    assert limits.spend("upload_bytes", "1000 per day", subject, cost=600).allowed
    assert not limits.spend("upload_bytes", "1000 per day", subject, cost=600).allowed
    assert limits.spend("upload_bytes", "1000 per day", subject, cost=400).allowed


def test_socket_slots_are_per_person_and_lapse(settings) -> None:
    r = get_redis(settings)
    two = dataclasses.replace(settings, ws_max_sockets_per_user=2)
    slots = SocketSlots(r, two, lapse_seconds=1)
    user = "u_" + secrets.token_hex(6)
    assert slots.claim(user, "a") and slots.claim(user, "b")
    assert not slots.claim(user, "c")
    assert slots.claim(user, "a")  # renewing a held slot is not a new one
    slots.release(user, "a")
    assert slots.claim(user, "c")
    time.sleep(1.1)  # a dead process's claims lapse on their own
    assert slots.claim(user, "d") and slots.claim(user, "e")


@pytest.mark.timeout(60)
def test_many_spends_at_once_wait_for_a_connection_instead_of_failing(settings) -> None:
    """Issue 14: 1,000 sockets resuming at once closed half of them with 1013.

    redis-py's default pool stops at 100 connections and raises
    MaxConnectionsError beyond; the limits' pool now queues callers like the
    shared client does (a blocking pool), so a burst only waits.
    """
    import threading

    limits = RateLimits(dataclasses.replace(settings, redis_max_connections=8))
    callers = 150
    start = threading.Barrier(callers)
    failures: list[BaseException] = []

    def spend(n: int) -> None:
        start.wait()
        try:
            for _ in range(3):
                limits.spend("ws_frames", "1000 per 10 seconds", f"burst-{n}")
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            failures.append(exc)

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(callers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert failures == []
    pool = limits.storage.storage.connection_pool
    assert len(pool._connections) <= 8, "the pool grew past its size"  # noqa: SLF001
