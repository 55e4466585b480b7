"""Which concrete index holds a document, so an update never writes a second copy.

Writing by id to the alias always lands in the *write* index. After a
rollover that is wrong for an email that already exists: a re-synced label
change would add a second copy to the new write index while the old one
stays in the index it was first written to. So before each bulk batch the
importer asks where the batch's ids live and sends their operations to that
concrete index; only ids found nowhere go to the alias.

The lookup is an ``mget`` over each concrete index behind the alias rather
than an ``ids`` search: ``mget`` is realtime, a search would miss a document
indexed less than a refresh interval ago (exactly the one a quick re-sync
touches). An alias with a single index needs no lookup at all.

One window remains: retention may delete an index between the lookup and the
bulk request; Elasticsearch would then auto-create that index for the
``index`` operation (outside the alias). Retention runs daily on indices 90
days past rollover, so the window is rare; an operator sees such an index in
``index status`` (it is not behind the alias) and in ``_cat/indices``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from elasticsearch import Elasticsearch, NotFoundError

from shared.core.settings import Settings
from shared.index.lifecycle.policy import LifecycleError
from shared.index.lifecycle.state import index_number

log = logging.getLogger(__name__)

MGET_CHUNK = 2000  # (index, id) pairs per mget request


def indices_behind(es: Elasticsearch, alias: str) -> list[str]:
    """The concrete indices behind ``alias``, oldest generation first."""
    try:
        found = es.indices.get_alias(name=alias).body
    except NotFoundError as exc:
        raise LifecycleError(
            f"alias {alias} does not exist, so there is nowhere to write; create it with "
            f"`flask --app wsgi index bootstrap`"
        ) from exc
    return sorted(found, key=lambda name: (index_number(name) or -1, name))


def locate_in(
    es: Elasticsearch, indices: Sequence[str], ids: Iterable[str]
) -> dict[str, list[str]]:
    """id -> the indices (oldest first) that hold it; ids found nowhere are absent."""
    unique = list(dict.fromkeys(ids))
    pairs = [(index, doc_id) for index in indices for doc_id in unique]
    holders: dict[str, list[str]] = {}
    for start in range(0, len(pairs), MGET_CHUNK):
        chunk = pairs[start : start + MGET_CHUNK]
        response = es.mget(docs=[{"_index": i, "_id": d} for i, d in chunk], source=False)
        for doc in response["docs"]:
            if doc.get("found"):
                holders.setdefault(doc["_id"], []).append(doc["_index"])
    return holders


def locate(es: Elasticsearch, settings: Settings, ids: Iterable[str]) -> dict[str, list[str]]:
    """Where each of ``ids`` lives behind the alias (realtime)."""
    return locate_in(es, indices_behind(es, settings.index_alias), ids)


def route_actions(
    es: Elasticsearch, settings: Settings, actions: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Point each bulk action aimed at the alias at the index that already holds its id.

    Returns ``(actions, cleanup)``. ``cleanup`` deletes extra copies of a
    document found in more than one index (written by an importer that
    predates this routing): the oldest copy is kept and updated, the rest go.
    """
    alias = settings.index_alias
    indices = indices_behind(es, alias)
    if len(indices) <= 1:
        return actions, []
    aimed = [action["_id"] for action in actions if action.get("_index") == alias]
    holders = locate_in(es, indices, aimed)
    routed: list[dict[str, Any]] = []
    cleanup: list[dict[str, Any]] = []
    for action in actions:
        where = holders.get(action["_id"]) if action.get("_index") == alias else None
        if not where:
            routed.append(action)
            continue
        routed.append({**action, "_index": where[0]})
        for extra in where[1:]:
            log.warning("document %s had a second copy in %s; deleting it", action["_id"], extra)
            cleanup.append({"_op_type": "delete", "_index": extra, "_id": action["_id"]})
    return routed, cleanup
