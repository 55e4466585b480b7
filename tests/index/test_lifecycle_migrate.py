"""``index migrate``: a new template generation, reindexed behind an atomic alias switch."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.index.lifecycle import LifecycleError, migrate, rollover, status
from shared.index.lifecycle.state import index_name
from shared.index.template import TEMPLATE_VERSION, first_index, template_body
from shared.index.writer import import_messages
from tests.index.test_lifecycle import behind, bootstrapped, message


@pytest.fixture()
def lc(settings):  # type: ignore[no-untyped-def]
    return bootstrapped(settings)


NEXT = TEMPLATE_VERSION + 1  # the version the next code would carry


def version_two(settings) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """The template with one mapping addition, as the next code version would carry it."""
    body = copy.deepcopy(template_body(settings))
    body["template"]["mappings"]["properties"]["importance"] = {"type": "keyword"}
    return body


def test_migrate_reindexes_every_index_while_searches_answer(lc) -> None:
    s, es, r = lc
    start = datetime.now(UTC)
    for month in range(3):
        when = start + timedelta(days=30 * month)
        batch = [message(f"m{month}-{n}", when + timedelta(hours=n)) for n in range(4)]
        import_messages(es, s, "u_mig", batch, source="t", refresh=True)
        if month < 2:
            assert rollover(es, r, s, now=when + timedelta(days=30)).outcome == "rolled_over"
    before = {i["name"]: i for i in status(es, r, s, now=start)["indices"]}
    # Bootstrap names the first index without a version; rollovers name theirs by it.
    old = [first_index(s), *(index_name(s.index_alias, n, TEMPLATE_VERSION) for n in (2, 3))]
    assert list(before) == old
    total = 12

    observed: list[tuple[str, int, set[str]]] = []

    def search_now(step: str, index: str) -> None:
        es.indices.refresh(index=s.index_alias)
        found = es.search(
            index=s.index_alias, query={"term": {"owner_id": "u_mig"}}, size=100, source=False
        )["hits"]
        observed.append((step, found["total"]["value"], {h["_id"] for h in found["hits"]}))

    now = start + timedelta(days=70)
    result = migrate(
        es, r, s, now=now, template_version=NEXT, template=version_two(s), on_step=search_now
    )
    assert result.outcome == "migrated", result.message
    steps = [step for step, _, _ in observed]
    assert steps.count("switched") == 3 and "rolled_over" in steps
    assert all(count == total for _, count, _ in observed), observed
    assert len({frozenset(ids) for _, _, ids in observed}) == 1, "the same emails throughout"

    after = status(es, r, s, now=now)
    names = [i["name"] for i in after["indices"]]
    assert names == [f"{s.index_alias}-v{NEXT}-{n:06d}" for n in (1, 2, 3, 4)]
    assert after["write_index"] == f"{s.index_alias}-v{NEXT}-000004"
    assert after["template"]["version"] == NEXT
    assert all(i["template_version"] == NEXT for i in after["indices"])
    assert [i["docs"] for i in after["indices"]] == [4, 4, 4, 0]
    for n in (1, 2):  # rollover times carried over, so retention keeps its schedule
        old_index, new = before[old[n - 1]], after["indices"][n - 1]
        assert new["rolled_over_at"] == old_index["rolled_over_at"]
        assert new["created_at"] == old_index["created_at"]
    assert after["indices"][2]["rolled_over_at"] == now.isoformat()
    mapping = es.indices.get_mapping(index=names[0])[names[0]]["mappings"]["properties"]
    assert mapping["importance"] == {"type": "keyword"}
    assert not es.indices.exists(index=first_index(s)), "the old generation is gone"
    # Writes keep working, into the new write index.
    import_messages(es, s, "u_mig", [message("after", now)], source="t", refresh=True)
    assert behind(es, s.index_alias)[f"{s.index_alias}-v{NEXT}-000004"] is True

    again = migrate(es, r, s, now=now, template_version=NEXT, template=version_two(s))
    assert again.outcome == "up_to_date"
    with pytest.raises(LifecycleError, match=f"newer than version {TEMPLATE_VERSION}"):
        migrate(es, r, s, now=now, template_version=TEMPLATE_VERSION)


def test_migrate_replaces_an_empty_write_index_in_one_switch(lc) -> None:
    s, es, r = lc
    plan = migrate(es, r, s, template_version=NEXT, template=version_two(s), dry_run=True)
    assert plan.outcome == "would_migrate" and plan.steps == [{"source": first_index(s), "docs": 0}]
    assert list(behind(es, s.index_alias)) == [first_index(s)], "a dry run changes nothing"

    result = migrate(es, r, s, template_version=NEXT, template=version_two(s))
    assert result.outcome == "migrated"
    assert behind(es, s.index_alias) == {f"{s.index_alias}-v{NEXT}-000001": True}
    assert not es.indices.exists(index=first_index(s))
