"""Copy one index into another, recomputing every document's derived fields on the way.

Why not the server's ``_reindex``: the derived fields (``category``, ``from_me``,
``attachment_types``, ``has_unsubscribe``, ``unread``) are decided by Python rules
(``shared.index.derived``), so mail indexed before a field existed, or before a rule
changed, gets it only if each stored ``_source`` passes through those rules. The source
index is write-blocked while it is copied (``migrate``), so a scroll over it is a
complete, stable snapshot; documents are written with ``op_type=create`` under their
own ids, as ``_reindex`` would.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from functools import lru_cache
from typing import Any

from elasticsearch import Elasticsearch, helpers

from shared.index.derived import derived_fields
from shared.index.lifecycle.policy import LifecycleError

# owner id -> that owner's own addresses (for ``from_me``); see shared.sync.accounts.
OwnerAddresses = Callable[[str], Collection[str]]

CHUNK = 500  # documents per scroll page and per bulk request


def refilled(source: dict[str, Any], owners: OwnerAddresses | None) -> dict[str, Any]:
    """``source`` with its derived fields recomputed from its own stored fields.

    Without ``owners`` (no address book at hand) a stored ``from_me: true`` is kept and
    otherwise ``from_me`` follows the labels (Sent). Attachment types known at ingest
    from MIME types alone (``_source`` keeps no MIME type) are kept too."""
    owner_id = str(source.get("owner_id") or "")
    addresses = owners(owner_id) if owners is not None and owner_id else ()
    keep_from_me = owners is None and bool(source.get("from_me"))
    fields = derived_fields(source, addresses, from_me=True if keep_from_me else None)
    stored_types = [str(t) for t in source.get("attachment_types") or []]
    fields["attachment_types"] = list(dict.fromkeys([*fields["attachment_types"], *stored_types]))
    doc = {**source, **fields}
    if "unread" not in fields:
        doc.pop("unread", None)
    return doc


def copy_refilled(
    es: Elasticsearch, source: str, target: str, owners: OwnerAddresses | None
) -> int:
    """Copy every document of ``source`` into ``target`` through ``refilled``; the number
    written. Any document the target refuses fails the copy (migrate then undoes it)."""
    lookup = lru_cache(maxsize=4096)(owners) if owners is not None else None

    def actions() -> Iterator[dict[str, Any]]:
        for hit in helpers.scan(
            es, index=source, size=CHUNK, query={"query": {"match_all": {}}}, preserve_order=False
        ):
            yield {
                "_op_type": "create",
                "_index": target,
                "_id": hit["_id"],
                "_source": refilled(hit["_source"], lookup),
            }

    ok, errors = helpers.bulk(es, actions(), chunk_size=CHUNK, raise_on_error=False)
    failures = errors if isinstance(errors, list) else []
    if failures:
        raise LifecycleError(
            f"{len(failures)} documents of {source} could not be copied into {target}: "
            f"{str(failures[0])[:300]}"
        )
    return int(ok)
