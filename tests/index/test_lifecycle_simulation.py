"""200 days of the lifecycle on a clock the test controls (passed in, never slept).

Every day a few emails arrive (through the importer, the real write path) and
one 45-day-old email is re-synced with a new label; every hour the rollover
job runs, every day the retention job. After every step there is exactly one
write index; every day the index names are contiguous, nothing is older than
retention plus one interval, the document count is exactly what lies inside
the window, and a search over the alias finds every day of it, no gap.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from shared.core.clients import get_elasticsearch, get_redis
from shared.index.lifecycle import retention, rollover
from shared.index.lifecycle.state import index_name, index_number, read_state
from shared.index.template import TEMPLATE_VERSION, bootstrap
from shared.index.writer import document_id, import_messages
from tests.index.test_lifecycle import behind, isolated, message

DAYS = 200
PER_DAY = 3
INGEST_HOUR = 9
RETENTION_HOUR = 23
RESYNC_AGE_DAYS = 45
OWNER = "u_simulation"


def test_two_hundred_days_of_ingestion_rollover_and_retention(settings) -> None:
    s = isolated(settings, import_batch_size=50)
    es, r = get_elasticsearch(s), get_redis(s)
    bootstrap(es, s)
    # Day 0 starts at the next UTC midnight, so each simulated day is one calendar day.
    start = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    start += timedelta(days=1)
    max_age, retention_span = timedelta(days=30), timedelta(days=s.retention_days)

    home: dict[str, str] = {}  # document id -> the index it was first written to
    received: dict[str, datetime] = {}
    ever_seen: set[str] = set()
    rolled = deleted = 0

    for day in range(DAYS):
        for hour in range(24):
            now = start + timedelta(days=day, hours=hour)
            if hour == INGEST_HOUR:
                _ingest(es, s, day, now, home, received)
                if day >= RESYNC_AGE_DAYS:
                    _resync_and_check(es, s, day, start, home)
            outcome = rollover(es, r, s, now=now, owner="simulation").outcome
            assert outcome in ("not_due", "rolled_over"), (day, hour, outcome)
            rolled += outcome == "rolled_over"
            if hour == RETENTION_HOUR:
                deleted += len(retention(es, r, s, now=now, owner="simulation").deleted)
            indices = behind(es, s.index_alias)
            assert sum(indices.values()) == 1, f"day {day} hour {hour}: {indices}"
            ever_seen |= set(indices)

        now = start + timedelta(days=day, hours=RETENTION_HOUR)
        _check_names(s.index_alias, behind(es, s.index_alias), ever_seen)
        _check_ages(es, s, now, retention_span)
        kept = _check_window(es, s, now, home, received, max_age, retention_span)
        _check_no_gap(es, s, now, min(received[d] for d in kept))

    # 200 days at 30 days per index: rolled at days 30..180; the first three are gone.
    assert rolled == 6 and deleted == 3, (rolled, deleted)
    assert sorted(index_number(name) for name in behind(es, s.index_alias)) == [4, 5, 6, 7]


def _ingest(
    es, s, day: int, now: datetime, home: dict[str, str], received: dict[str, datetime]
) -> None:  # type: ignore[no-untyped-def]
    write = next(name for name, is_write in behind(es, s.index_alias).items() if is_write)
    messages = [message(f"d{day}-m{n}", now + timedelta(seconds=n)) for n in range(PER_DAY)]
    stats = import_messages(es, s, OWNER, messages, source="simulation", refresh=True)
    assert stats.indexed == PER_DAY and stats.failed == 0, stats.errors
    for n in range(PER_DAY):
        doc_id = _doc_id(day, n)
        home[doc_id] = write
        received[doc_id] = now + timedelta(seconds=n)


def _doc_id(day: int, n: int) -> str:
    from shared.mail.parse import parse_email

    return document_id(
        OWNER, parse_email(message(f"d{day}-m{n}", datetime.now(UTC)).raw).message_key
    )


def _resync_and_check(es, s, day: int, start: datetime, home: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    """A label change on an email that has since been rolled over: updated where it lives."""
    old_day = day - RESYNC_AGE_DAYS
    when = start + timedelta(days=old_day, hours=INGEST_HOUR)
    label = f"resynced-{day}"
    import_messages(
        es, s, OWNER, [message(f"d{old_day}-m0", when, ("Inbox", label))], source="s", refresh=True
    )
    doc_id = _doc_id(old_day, 0)
    hits = es.search(index=s.index_alias, query={"ids": {"values": [doc_id]}})["hits"]["hits"]
    assert len(hits) == 1, f"day {day}: {doc_id} is in {[h['_index'] for h in hits]}"
    assert hits[0]["_index"] == home[doc_id] and label in hits[0]["_source"]["labels"]


def _check_names(alias: str, indices: dict[str, bool], ever_seen: set[str]) -> None:
    numbers = sorted(index_number(name) or 0 for name in indices)
    # The first index keeps the seed's plain name; rollovers name theirs by template version.
    assert all(
        name in (f"{alias}-000001", index_name(alias, index_number(name) or 0, TEMPLATE_VERSION))
        for name in ever_seen
    ), sorted(ever_seen)
    assert numbers == list(range(numbers[0], numbers[-1] + 1)), f"gap in {sorted(indices)}"
    write = next(name for name, is_write in indices.items() if is_write)
    assert index_number(write) == numbers[-1], "the write index is the newest"
    seen = sorted(index_number(name) or 0 for name in ever_seen)
    assert seen == list(range(1, seen[-1] + 1)), "every number used once, none skipped"
    assert set(range(1, numbers[0])) == set(seen) - set(numbers), "only the oldest were deleted"


def _check_ages(es, s, now: datetime, retention_span: timedelta) -> None:  # type: ignore[no-untyped-def]
    limit = retention_span + timedelta(seconds=s.retention_interval_seconds)
    for index in read_state(es, s).non_write():
        assert index.rolled_over_at is not None
        assert now - index.rolled_over_at <= limit, f"{index.name} outlived retention"


def _check_window(  # type: ignore[no-untyped-def]
    es,
    s,
    now: datetime,
    home: dict[str, str],
    received: dict[str, datetime],
    max_age: timedelta,
    retention_span: timedelta,
) -> set[str]:
    es.indices.refresh(index=s.index_alias)
    present = set(behind(es, s.index_alias))
    expected = {doc_id for doc_id, index in home.items() if index in present}
    count = es.count(index=s.index_alias, query={"term": {"owner_id": OWNER}})["count"]
    assert count == len(expected), "documents lost or duplicated"
    # The window, independently of index membership: nothing received within the
    # retention period is gone, nothing older than an index's whole life is left.
    recent = {d for d, when in received.items() if now - when < retention_span}
    assert recent <= expected
    longest_life = max_age + timedelta(hours=1) + retention_span + timedelta(days=1)
    assert all(now - received[d] <= longest_life for d in expected)
    return expected


def _check_no_gap(es, s, today: datetime, oldest: datetime) -> None:  # type: ignore[no-untyped-def]
    """Day buckets over the alias: one per day from the oldest kept email to today."""
    response = es.search(
        index=s.index_alias,
        size=0,
        query={"term": {"owner_id": OWNER}},
        aggs={"days": {"date_histogram": {"field": "received_at", "calendar_interval": "day"}}},
    )
    buckets = response["aggregations"]["days"]["buckets"]
    days = [datetime.fromtimestamp(b["key"] / 1000, UTC).date() for b in buckets]
    span = (today.date() - oldest.date()).days + 1
    assert days == [oldest.date() + timedelta(days=n) for n in range(span)], "a day is missing"
    assert all(b["doc_count"] == PER_DAY for b in buckets), "a day is partly missing or doubled"
