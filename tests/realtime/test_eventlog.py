"""The event log on a real Redis: dedup, order, epoch, reset, doorbells, delivery."""

from __future__ import annotations

import dataclasses
import secrets
import time

import pytest

from shared.core.clients import get_redis
from shared.core.keys import RedisKeys
from shared.realtime.delivery import Delivery, deliver
from shared.realtime.eventlog import EventLog, is_entry_id, position_before


@pytest.fixture()
def log_and_stream(settings):  # type: ignore[no-untyped-def]
    events = EventLog(get_redis(settings), settings)
    return events, events.conversation_stream("c_" + secrets.token_hex(6))


def test_append_is_idempotent_per_dedup_key(log_and_stream) -> None:
    events, stream = log_and_stream
    first = events.append(
        stream, "delta", {"text": "a"}, dedup_key="m1:delta:0", conversation_id="c"
    )
    again = events.append(
        stream, "delta", {"text": "DIFFERENT"}, dedup_key="m1:delta:0", conversation_id="c"
    )
    assert first.written and not again.written
    assert again.id == first.id and again.epoch == first.epoch
    read = events.read(stream)
    assert [(e.type, e.data) for e in read.events] == [("delta", {"text": "a"})]
    with pytest.raises(ValueError):
        events.append(stream, "delta", {}, dedup_key="")


def test_append_all_writes_in_order_once_per_key_like_append(log_and_stream) -> None:
    """The pipelined batch an answer is written with: same order, same dedup as one by one."""
    events, stream = log_and_stream
    first = events.append(stream, "search", {"n": 0}, dedup_key="m1:search", conversation_id="c")
    batch = [
        ("search", {"n": "again"}, "m1:search"),  # already written: a no-op, first id back
        ("hits", {"n": 1}, "m1:hits"),
        ("delta", {"n": 2}, "m1:delta:0"),
    ]
    appended = events.append_all(stream, batch, "c")
    assert [a.written for a in appended] == [False, True, True]
    assert appended[0].id == first.id
    assert len({a.epoch for a in appended}) == 1
    again = events.append_all(stream, batch, "c")
    assert [a.id for a in again] == [a.id for a in appended] and not any(a.written for a in again)
    read = events.read(stream)
    assert [(e.type, e.data, e.conversation_id) for e in read.events] == [
        ("search", {"n": 0}, "c"),
        ("hits", {"n": 1}, "c"),
        ("delta", {"n": 2}, "c"),
    ]
    with pytest.raises(ValueError):
        events.append_all(stream, [("delta", {}, "")])


def test_read_after_is_exclusive_and_ordered(log_and_stream) -> None:
    events, stream = log_and_stream
    ids = [events.append(stream, "delta", {"n": n}, dedup_key=f"k{n}").id for n in range(5)]
    assert [e.data["n"] for e in events.read(stream, after=ids[1]).events] == [2, 3, 4]
    assert [e.data["n"] for e in events.read(stream, after=position_before(ids[0])).events] == [
        0,
        1,
        2,
        3,
        4,
    ]
    assert events.read(stream, after=ids[-1]).events == []
    event = events.read(stream, count=1).events[0]
    assert event.as_dict() == {
        "id": ids[0],
        "type": "delta",
        "conversation_id": "",
        "data": {"n": 0},
    }


def test_wrong_epoch_or_trimmed_position_means_reset(log_and_stream, settings) -> None:
    events, stream = log_and_stream
    first = events.append(stream, "delta", {}, dedup_key="a")
    second = events.append(stream, "delta", {}, dedup_key="b")
    events.append(stream, "delta", {}, dedup_key="c")
    assert not events.read(stream, after=first.id, epoch=first.epoch).reset
    assert events.read(stream, after=first.id, epoch="stale-epoch").reset
    r = get_redis(settings)
    r.xtrim(stream, maxlen=2, approximate=False)
    # The first entry went; a client at the second (still there) resumes normally.
    assert not events.read(stream, after=second.id, epoch=first.epoch).reset
    r.xtrim(stream, maxlen=1, approximate=False)
    # The second went too: a client at the first cannot know what it missed.
    assert events.read(stream, after=first.id, epoch=first.epoch).reset


def test_epoch_survives_and_new_stream_gets_a_new_one(log_and_stream) -> None:
    events, stream = log_and_stream
    assert events.epoch(stream) == "", "no epoch before the first append (reads never make one)"
    epoch = events.append(stream, "x", {}, dedup_key="1").epoch
    assert epoch and events.epoch(stream) == epoch
    assert events.append(stream, "x", {}, dedup_key="2").epoch == epoch
    other = events.conversation_stream("c_other_" + secrets.token_hex(4))
    assert events.append(other, "x", {}, dedup_key="1").epoch != epoch


def test_append_rings_the_doorbell(log_and_stream, settings) -> None:
    events, stream = log_and_stream
    r = get_redis(settings)
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(RedisKeys(settings.key_prefix).doorbell_channel())
    time.sleep(0.05)
    events.append(stream, "delta", {}, dedup_key="ring")
    events.append(stream, "delta", {}, dedup_key="ring")  # a duplicate rings nothing
    messages = []
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message:
            messages.append(message["data"])
    pubsub.close()
    assert messages == [stream]


def test_deliver_targets_user_or_conversation(settings) -> None:
    r = get_redis(settings)
    events = EventLog(r, settings)
    user_id = "u_" + secrets.token_hex(4)
    appended = deliver(
        r, settings, Delivery("user", user_id, "notification", {"text": "12 new emails"}, "sync:1")
    )
    read = events.read(events.user_stream(user_id))
    assert [e.id for e in read.events] == [appended.id]
    with pytest.raises(ValueError):
        deliver(r, settings, Delivery("nobody", "x", "t", {}, "k"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("0", True),
        ("1700000000000-0", True),
        ("17-3", True),
        ("abc", False),
        ("1-x", False),
        ("", False),
        ("1-2-3", False),
    ],
)
def test_entry_id_validation(value: str, ok: bool) -> None:
    assert is_entry_id(value) is ok


def test_keys_are_prefixed(settings) -> None:
    other = dataclasses.replace(settings, key_prefix="other:")
    assert EventLog(get_redis(other), other).conversation_stream("c").startswith("other:")


def test_outbox_resends_only_what_never_settled(settings) -> None:
    from shared.realtime.delivery import Delivery, claim_overdue, record_pending, settle

    r = get_redis(settings)
    isolated = dataclasses.replace(settings, key_prefix=f"outbox-{secrets.token_hex(3)}:")
    grace = isolated.delivery_redeliver_after_seconds
    lost = Delivery("user", "u", "t", {}, "lost")
    landed = dataclasses.replace(lost, dedup_key="landed")
    record_pending(r, isolated, lost, now=1000.0)
    record_pending(r, isolated, landed, now=1000.0)
    settle(r, isolated, "landed")
    assert claim_overdue(r, isolated, now=1000.0 + grace / 2) == [], "not overdue yet"
    assert claim_overdue(r, isolated, now=1000.0 + grace + 1) == [lost]
    assert claim_overdue(r, isolated, now=1000.0 + grace + 1) == [], "one sweep claims it once"
    assert claim_overdue(r, isolated, now=1000.0 + 2 * grace + 2) == [lost], (
        "still unsettled: again"
    )
    settle(r, isolated, "lost")
    assert claim_overdue(r, isolated, now=1e12) == []


def test_outbox_resends_back_off_so_a_backlog_drains(settings) -> None:
    """A delivery still unsettled is re-sent after the grace period, then 2x, 4x... later.

    With a fixed interval every delivery waiting in a queue longer than the grace
    period was re-sent once per interval, so a backlog grew faster than workers
    drained it (make chaos, workers_killed: 7,334 tasks queued for 1,000 deliveries)."""
    from shared.realtime.delivery import Delivery, claim_overdue, record_pending, settle

    r = get_redis(settings)
    isolated = dataclasses.replace(
        settings, key_prefix=f"outbox-{secrets.token_hex(3)}:", delivery_redeliver_after_seconds=10
    )
    waiting = Delivery("user", "u", "t", {}, "waiting")
    record_pending(r, isolated, waiting, now=0.0)
    resent_at = []
    for second in range(0, 200):
        if claim_overdue(r, isolated, now=float(second)):
            resent_at.append(second)
    assert resent_at == [10, 20, 40, 80, 160], resent_at  # not every 10 s: 19 re-sends
    settle(r, isolated, "waiting")
    keys = RedisKeys(isolated.key_prefix)
    assert not r.exists(keys.delivery_outbox_resends()), "settling forgets the count"


@pytest.fixture()
def own_redis(tmp_path, settings):  # type: ignore[no-untyped-def]
    """A Redis of this test's own: every command it counts came from the code under test."""
    from devtools.servers import start_redis

    server = start_redis(tmp_path / "redis", appendonly=False)
    mine = dataclasses.replace(settings, redis_url=server.url)
    yield mine, get_redis(mine)
    server.stop()


@pytest.mark.timeout(30)
def test_reading_writes_nothing_and_takes_one_round_trip(own_redis) -> None:
    """Issue 14 item 1: a read used to write the stream's epoch (SET NX + GET) every time."""
    from tests.redis_calls import calls_between, command_counts

    mine, r = own_redis
    events = EventLog(r, mine)
    empty = events.conversation_stream("c_empty")
    stream = events.conversation_stream("c_full")
    first = events.append(stream, "delta", {}, dedup_key="a")
    before = command_counts(r)
    assert events.epoch(empty) == ""
    assert events.read(empty).events == [] and events.read(empty, after=first.id).events == []
    resumed = events.read(stream, after=position_before(first.id), epoch=first.epoch)
    assert [e.id for e in resumed.events] == [first.id] and resumed.epoch == first.epoch
    calls = calls_between(before, command_counts(r))
    assert set(calls) <= {"get", "xrange"}, f"a read wrote: {calls}"
    assert calls["get"] == 4, calls  # epoch() once, each read once
    assert not r.exists(events.keys.stream_epoch(empty)), "reading made an epoch"


def test_a_gone_log_means_reset_and_is_not_recreated_by_reading(log_and_stream, settings) -> None:
    """The epoch read path: expired or deleted (delete-my-data), the client refetches."""
    events, stream = log_and_stream
    appended = events.append(stream, "delta", {}, dedup_key="a")
    r = get_redis(settings)
    r.delete(stream, events.keys.stream_epoch(stream))  # what the TTL does after 90 days
    gone = events.read(stream, after=appended.id, epoch=appended.epoch)
    assert gone.reset and gone.epoch == ""
    assert events.read(stream, after="0", epoch=appended.epoch).reset
    assert not r.exists(events.keys.stream_epoch(stream))
    # Written again, the log has a new epoch: the old one still means reset, the new resumes.
    again = events.append(stream, "delta", {}, dedup_key="b")
    assert again.epoch != appended.epoch
    assert events.read(stream, after=appended.id, epoch=appended.epoch).reset
    assert [e.id for e in events.read(stream, after="0", epoch=again.epoch).events] == [again.id]
    # A client that never had an epoch (an empty stream's "") resumes by position alone.
    assert not events.read(stream, after="0", epoch="").reset
