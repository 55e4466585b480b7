"""Updates after rollover: a re-synced email changes where it lives, never gets a twin."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.index.lifecycle import rollover
from shared.index.lifecycle.placement import locate
from shared.index.template import first_index
from shared.index.writer import delete_documents, document_id, import_messages
from shared.mail.parse import parse_email
from tests.index.test_lifecycle import bootstrapped, message, nth


@pytest.fixture()
def lc(settings):  # type: ignore[no-untyped-def]
    return bootstrapped(settings)


def _id(owner: str, key: str) -> str:
    return document_id(owner, parse_email(message(key, datetime.now(UTC)).raw).message_key)


def _copies(es, alias: str, doc_id: str) -> list[dict]:  # type: ignore[no-untyped-def,type-arg]
    es.indices.refresh(index=alias)
    return es.search(index=alias, query={"ids": {"values": [doc_id]}})["hits"]["hits"]


def test_resync_after_rollover_updates_the_one_document(lc) -> None:
    s, es, r = lc
    when = datetime.now(UTC)
    import_messages(es, s, "u_up", [message("e1", when, ("Inbox",))], source="t", refresh=True)
    assert rollover(es, r, s, now=when + timedelta(days=31)).outcome == "rolled_over"

    # Straight after the rollover, before any refresh: the lookup is realtime.
    stats = import_messages(es, s, "u_up", [message("e1", when, ("Inbox", "Starred"))], source="t")
    assert stats.indexed == 1 and stats.failed == 0
    copies = _copies(es, s.index_alias, _id("u_up", "e1"))
    assert len(copies) == 1, [c["_index"] for c in copies]
    assert copies[0]["_index"] == first_index(s)
    assert copies[0]["_source"]["labels"] == ["Inbox", "Starred"]
    # A brand-new email still goes to the write index.
    import_messages(es, s, "u_up", [message("e2", when)], source="t", refresh=True)
    assert _copies(es, s.index_alias, _id("u_up", "e2"))[0]["_index"] == nth(s, 2)


def test_update_right_after_indexing_and_rolling_finds_the_unrefreshed_copy(lc) -> None:
    s, es, r = lc
    when = datetime.now(UTC)
    import_messages(es, s, "u_up", [message("seed", when)], source="t", refresh=True)
    import_messages(es, s, "u_up", [message("fresh", when)], source="t")  # not refreshed
    assert rollover(es, r, s, now=when + timedelta(days=31)).outcome == "rolled_over"
    import_messages(es, s, "u_up", [message("fresh", when, ("Later",))], source="t", refresh=True)
    copies = _copies(es, s.index_alias, _id("u_up", "fresh"))
    assert [(c["_index"], c["_source"]["labels"]) for c in copies] == [(first_index(s), ["Later"])]


def test_delete_documents_reaches_every_index(lc) -> None:
    s, es, r = lc
    when = datetime.now(UTC)
    import_messages(es, s, "u_up", [message("old", when)], source="t", refresh=True)
    rollover(es, r, s, now=when + timedelta(days=31))
    import_messages(es, s, "u_up", [message("new", when)], source="t", refresh=True)
    ids = [_id("u_up", "old"), _id("u_up", "new"), _id("u_up", "never-indexed")]
    assert locate(es, s, ids) == {
        ids[0]: [first_index(s)],
        ids[1]: [nth(s, 2)],
    }
    assert delete_documents(es, s, ids, refresh=True) == 2
    assert es.count(index=s.index_alias, query={"term": {"owner_id": "u_up"}})["count"] == 0
    assert delete_documents(es, s, ids) == 0


def test_a_legacy_second_copy_is_removed_on_the_next_sync(lc) -> None:
    """Copies written by an importer that wrote through the alias after a rollover."""
    s, es, r = lc
    when = datetime.now(UTC)
    import_messages(es, s, "u_up", [message("twin", when)], source="t", refresh=True)
    rollover(es, r, s, now=when + timedelta(days=31))
    doc_id = _id("u_up", "twin")
    source = _copies(es, s.index_alias, doc_id)[0]["_source"]
    es.index(index=s.index_alias, id=doc_id, document=source, refresh=True)  # the old bug
    assert len(_copies(es, s.index_alias, doc_id)) == 2

    import_messages(es, s, "u_up", [message("twin", when, ("Fixed",))], source="t", refresh=True)
    copies = _copies(es, s.index_alias, doc_id)
    assert [(c["_index"], c["_source"]["labels"]) for c in copies] == [(first_index(s), ["Fixed"])]
