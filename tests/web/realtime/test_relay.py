"""The web process's doorbell relay: wake-ups and the shared tail, on a real Redis."""

from __future__ import annotations

import secrets
import threading
import time

import pytest

from shared.core.clients import get_redis
from shared.realtime.eventlog import EventLog, position_before
from web.realtime.relay import Relay


def test_waiter_wakes_on_append_and_tail_serves_the_same_events(settings) -> None:
    r = get_redis(settings)
    events = EventLog(r, settings)
    relay = Relay(r, settings)
    stream = events.conversation_stream("c_relay_" + secrets.token_hex(4))
    first = events.append(stream, "delta", {"n": 0}, dedup_key="0")
    with relay.listening([stream]) as waiter:
        # Its first subscribe wakes every waiter (news may have come before it): not the ring.
        assert relay.subscribed.wait(10)
        waiter.wait(0)
        assert [e.id for e in relay.read_after(stream, position_before(first.id))] == [first.id]
        woke = threading.Event()

        def wait() -> None:
            if waiter.wait(10):
                woke.set()

        thread = threading.Thread(target=wait)
        thread.start()
        second = events.append(stream, "delta", {"n": 1}, dedup_key="1")
        thread.join(12)
        assert woke.is_set(), "the doorbell never rang"
        # After the ring the tail refetches once; every reader sees the same events as Redis.
        for after in ("0", position_before(first.id), first.id, second.id):
            expected = [e.id for e in events.read(stream, after=after).events]
            assert [e.id for e in relay.read_after(stream, after)] == expected, after
    relay.stop()


def test_reader_far_behind_the_tail_falls_back_to_redis(settings) -> None:
    r = get_redis(settings)
    events = EventLog(r, settings)
    relay = Relay(r, settings)
    stream = events.conversation_stream("c_relay_" + secrets.token_hex(4))
    ids = [events.append(stream, "delta", {"n": n}, dedup_key=str(n)).id for n in range(5)]
    with relay.listening([stream]):
        assert [e.id for e in relay.read_after(stream, ids[3])] == ids[4:]  # tail starts at ids[4]
        assert [e.id for e in relay.read_after(stream, ids[0])] == ids[1:]  # older: read from Redis
    relay.stop()


def _append_many(events: EventLog, stream: str, count: int) -> list[str]:
    """``count`` events in one round trip; plain XADD rings no doorbell, so only reads get there."""
    pipe = events.redis.pipeline(transaction=False)
    for n in range(count):
        pipe.xadd(stream, {"type": "delta", "conversation_id": "", "data": f'{{"n":{n}}}'})
    return [str(entry_id) for entry_id in pipe.execute()]


@pytest.mark.timeout(30)
def test_a_reader_more_than_a_page_behind_reaches_the_end(settings) -> None:
    """Issue 10 item 1: 1,200 events from ``0`` delivered 500, then nothing until a doorbell."""
    r = get_redis(settings)
    events = EventLog(r, settings)
    relay = Relay(r, settings)
    stream = events.conversation_stream("c_relay_" + secrets.token_hex(4))
    ids = _append_many(events, stream, 1200)
    with relay.listening([stream]):
        seen: list[str] = []
        after = "0"
        for _ in range(10):  # no doorbell rings in between: the reads alone must get there
            page = relay.read_after(stream, after)
            if not page:
                break
            seen += [e.id for e in page]
            after = page[-1].id
        assert seen == ids
        # A second reader far behind (inside the shared tail's reach and before it) also ends.
        for start in (ids[100], ids[-300], ids[-5]):
            got, after = [], start
            while page := relay.read_after(stream, after):
                got += [e.id for e in page]
                after = page[-1].id
            assert got == ids[ids.index(start) + 1 :], start
    relay.stop()


@pytest.mark.timeout(60)
def test_a_reader_behind_reaches_the_end_across_a_redis_restart(tmp_path, settings) -> None:
    """Item 1 under item 18's fault: Redis stops mid-read and comes back; no doorbell needed."""
    import dataclasses

    import redis

    from devtools.servers import start_redis

    own = start_redis(tmp_path / "redis")  # this test's own Redis: it stops it
    mine = dataclasses.replace(settings, redis_url=own.url)
    r = get_redis(mine)
    events = EventLog(r, mine)
    relay = Relay(r, mine)
    stream = events.conversation_stream("c_relay_" + secrets.token_hex(4))
    ids = _append_many(events, stream, 1200)
    restarted = None
    try:
        with relay.listening([stream]):
            seen = [e.id for e in relay.read_after(stream, "0")]
            own.stop()  # SIGTERM: Redis writes its append-only file before it exits
            with pytest.raises(redis.ConnectionError):
                relay.read_after(stream, seen[-1])
            restarted = start_redis(tmp_path / "redis", port=own.port)
            while page := relay.read_after(stream, seen[-1]):
                seen += [e.id for e in page]
            assert seen == ids
    finally:
        relay.stop()
        own.stop()
        if restarted is not None:
            restarted.stop()


@pytest.fixture()
def own_relay(tmp_path, settings):  # type: ignore[no-untyped-def]
    """A relay on a redis-server of the test's own: every command it counts came from the test."""
    import dataclasses

    from devtools.servers import start_redis

    own = start_redis(tmp_path / "redis", appendonly=False)
    mine = dataclasses.replace(settings, redis_url=own.url)
    r = get_redis(mine)
    relay = Relay(r, mine)
    try:
        yield r, EventLog(r, mine), relay
    finally:
        relay.stop()
        own.stop()


@pytest.mark.timeout(30)
def test_an_idle_reader_costs_no_redis_call_until_a_doorbell(own_relay) -> None:  # type: ignore[no-untyped-def]
    """Issue 14 item 1: "empty at generation g" is remembered, counted on the server itself.

    Before, an empty tail re-read Redis on every call (epoch SET NX + GET + XRANGE), so
    thousands of idle sockets waking once a second made tens of thousands of calls.
    """
    from tests.redis_calls import APPEND_COMMANDS, calls_between, command_counts

    r, events, relay = own_relay
    empty = events.conversation_stream("c_idle_empty")
    busy = events.conversation_stream("c_idle_busy")
    first = events.append(busy, "delta", {"n": 0}, dedup_key="0")
    with relay.listening([empty, busy]) as waiter:
        # Its first subscribe wakes every waiter (news may have come before it): consumed.
        assert relay.subscribed.wait(10)
        waiter.wait(0)
        assert relay.read_after(empty, "0") == []  # the first read fetches once
        assert [e.id for e in relay.read_after(busy, "0")] == [first.id]
        before = command_counts(r)
        for _ in range(200):  # an idle socket's wake-ups: memory only
            assert relay.read_after(empty, "0") == []
            assert relay.read_after(busy, first.id) == []
            assert [e.id for e in relay.read_after(busy, "0")] == [first.id]
        assert calls_between(before, command_counts(r)) == {}
        before = command_counts(r)
        second = events.append(busy, "delta", {"n": 1}, dedup_key="1")
        deadline = time.monotonic() + 10
        while not waiter.wait(0.5) and time.monotonic() < deadline:
            pass
        for _ in range(50):  # a hundred readers after one doorbell: one fetch
            assert [e.id for e in relay.read_after(busy, first.id)] == [second.id]
        calls = calls_between(before, command_counts(r))
        # The one fetch is the listener's own, before it rang the waiter.
        assert calls.pop("xrange") == 1
        assert set(calls) <= APPEND_COMMANDS, calls


@pytest.mark.timeout(30)
def test_a_reader_behind_the_tail_start_is_served_from_memory_after_one_fetch(
    settings,
) -> None:
    r = get_redis(settings)
    events = EventLog(r, settings)
    relay = Relay(r, settings)
    stream = events.conversation_stream("c_relay_" + secrets.token_hex(4))
    ids = [events.append(stream, "delta", {"n": n}, dedup_key=str(n)).id for n in range(4)]
    with relay.listening([stream]):
        assert relay.subscribed.wait(10)  # its first wake-up would make the tail re-read
        assert [e.id for e in relay.read_after(stream, ids[2])] == ids[3:]  # tail from ids[2]
        assert [e.id for e in relay.read_after(stream, ids[0])] == ids[1:]  # reaches back
        r.xtrim(stream, maxlen=0, approximate=False)  # Redis no longer has them: memory does
        assert [e.id for e in relay.read_after(stream, ids[0])] == ids[1:]
    relay.stop()


@pytest.mark.timeout(30)
def test_a_stream_many_wait_on_is_fetched_by_the_listener_before_they_wake(own_relay) -> None:  # type: ignore[no-untyped-def]
    """The doorbell's listener fetches the news once, before it rings: the waiters it
    wakes read memory, none queues on the tail's lock behind another one's fetch."""
    import contextlib

    from tests.redis_calls import calls_between, command_counts

    r, events, relay = own_relay
    stream = events.conversation_stream("c_many_waiters")
    first = events.append(stream, "delta", {"n": 0}, dedup_key="0")
    with contextlib.ExitStack() as stack:
        waiters = [stack.enter_context(relay.listening([stream])) for _ in range(20)]
        assert relay.subscribed.wait(10)
        for waiter in waiters:
            waiter.wait(0)  # the subscribe's wake-up, consumed
        assert [e.id for e in relay.read_after(stream, "0")] == [first.id]
        second = events.append(stream, "delta", {"n": 1}, dedup_key="1")
        assert all(waiter.wait(10) for waiter in waiters)  # rung after the fetch
        before = command_counts(r)
        for _ in waiters:
            assert [e.id for e in relay.read_after(stream, first.id)] == [second.id]
        assert calls_between(before, command_counts(r)) == {}
