"""What lies behind the write alias: its indices, their ages, sizes and rollover times.

Every lifecycle decision starts from ``read_state``, which also refuses the
traps ILM and Curator users report: an alias that does not exist, an alias
whose write index is not marked (``is_write_index``), and a write index that
is not the newest index behind the alias. Each refusal says how to fix it.

Times come from the server, in this order:

- **created_at**: the ``_meta.mailchat.created_at`` stamp Mailchat puts into the
  create (or rollover) request itself, else the server's ``index.creation_date``.
- **rolled_over_at** (non-write indices): the ``rolled_over_at`` stamp Mailchat's
  rollover writes onto the old index, else the ``created_at`` of the index that
  names it in ``rolled_over_from`` (written atomically by the rollover request),
  else Elasticsearch's own ``rollover_info`` from the cluster state (indices
  rolled by something else, e.g. ILM before switching over), else the newest
  ``received_at`` inside the index, else its creation time.

Mailchat's stamps come first because they are written in the clock the jobs
run with (tests pass a controlled clock); on a real cluster they agree with
the server's to the millisecond. noida-db keeps ``rollover_info`` empty, so
there an index rolled by hand falls through to its newest ``received_at``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from elasticsearch import ApiError, Elasticsearch, NotFoundError

from shared.core.settings import Settings
from shared.index.lifecycle.policy import LifecycleError
from shared.index.template import META_KEY

log = logging.getLogger(__name__)

_NUMBERED = re.compile(r"^(?P<stem>.+?)-(?:v(?P<version>\d+)-)?(?P<number>\d{6,})$")


@dataclass(frozen=True)
class IndexInfo:
    """One concrete index behind the alias."""

    name: str
    number: int | None
    is_write_index: bool
    created_at: datetime
    created_at_source: str
    template_version: int
    docs: int
    primary_bytes: int
    largest_primary_shard_bytes: int
    lifecycle_setting: str | None
    stamp: dict[str, Any] = field(default_factory=dict)
    rolled_over_at: datetime | None = None
    rolled_over_at_source: str | None = None

    def age_seconds(self, now: datetime) -> float:
        return (now - self.created_at).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "is_write_index": self.is_write_index,
            "docs": self.docs,
            "primary_bytes": self.primary_bytes,
            "largest_primary_shard_bytes": self.largest_primary_shard_bytes,
            "created_at": self.created_at.isoformat(),
            "created_at_source": self.created_at_source,
            "rolled_over_at": self.rolled_over_at.isoformat() if self.rolled_over_at else None,
            "rolled_over_at_source": self.rolled_over_at_source,
            "template_version": self.template_version,
        }


@dataclass(frozen=True)
class AliasState:
    alias: str
    indices: list[IndexInfo]  # oldest first

    @property
    def write_index(self) -> IndexInfo:
        return next(index for index in self.indices if index.is_write_index)

    def non_write(self) -> list[IndexInfo]:
        return [index for index in self.indices if not index.is_write_index]


def index_number(name: str) -> int | None:
    """The generation number at the end of an index name (``-000007`` -> 7)."""
    match = _NUMBERED.match(name)
    return int(match.group("number")) if match else None


def index_name(alias: str, number: int, template_version: int) -> str:
    """``<alias>-000007``; indices of template version 2+ are ``<alias>-v2-000007``.

    The number is the generation (it keeps counting across template versions,
    so names stay contiguous and sortable); the ``vN`` infix says which
    template an index was built from, so ``index migrate`` can name the
    replacement of ``-000003`` without colliding with it.
    """
    if template_version <= 1:
        return f"{alias}-{number:06d}"
    return f"{alias}-v{template_version}-{number:06d}"


def parse_time(value: Any) -> datetime | None:
    """An ISO string or epoch milliseconds as an aware datetime (None if unreadable)."""
    if value is None:
        return None
    try:
        if isinstance(value, int | float) or (isinstance(value, str) and value.isdigit()):
            return datetime.fromtimestamp(int(value) / 1000, UTC)
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except (ValueError, OverflowError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _bootstrap_hint(alias: str) -> str:
    return f"create it with `flask --app wsgi index bootstrap` (MAILCHAT_INDEX_ALIAS={alias})"


def _mark_write_hint(alias: str, index: str) -> str:
    return (
        f'mark one with POST _aliases {{"actions":[{{"add":{{"index":"{index}",'
        f'"alias":"{alias}","is_write_index":true}}}}]}}'
    )


def _sort_key(name: str) -> tuple[int, str]:
    number = index_number(name)
    return (-1 if number is None else number, name)


def read_state(
    es: Elasticsearch, settings: Settings, *, resolve_rollover_times: bool = True
) -> AliasState:
    """The indices behind ``settings.index_alias``; raises ``LifecycleError`` on the traps.

    ``resolve_rollover_times=False`` skips the per-index work only retention
    and status need (the hourly rollover check looks at the write index alone).
    """
    alias = settings.index_alias
    try:
        described = es.indices.get(index=alias).body
    except NotFoundError as exc:
        raise LifecycleError(f"alias {alias} does not exist; {_bootstrap_hint(alias)}") from exc
    if alias in described:
        raise LifecycleError(
            f"{alias} is a concrete index, not an alias: writes never rolled over. Reindex it "
            f"into {index_name(alias, 1, 1)} and put the alias {alias} on that index with "
            f'"is_write_index": true'
        )
    names = sorted(described, key=_sort_key)
    marked = [
        name
        for name in names
        if described[name].get("aliases", {}).get(alias, {}).get("is_write_index") is True
    ]
    if len(marked) != 1:
        raise LifecycleError(
            f"alias {alias} has no write index marked (is_write_index) among {', '.join(names)}; "
            f"{_mark_write_hint(alias, names[-1])}"
        )
    write_name = marked[0]
    write_number = index_number(write_name)
    if write_number is None:
        raise LifecycleError(
            f"write index {write_name} of alias {alias} does not end in a generation number "
            f"(-000001), so its successor cannot be named; roll it over once by hand with "
            f"POST {alias}/_rollover/{index_name(alias, 1, 1)}"
        )
    newer = [name for name in names if (index_number(name) or -1) > write_number]
    if newer:
        raise LifecycleError(
            f"write index {write_name} of alias {alias} is older than {', '.join(newer)} behind "
            f"the same alias; {_mark_write_hint(alias, newer[-1])}"
        )
    stats = es.indices.stats(index=",".join(names), metric="docs,store", level="shards").body
    indices = [
        _index_info(name, described[name], stats["indices"].get(name, {}), name == write_name)
        for name in names
    ]
    state = AliasState(alias, indices)
    if resolve_rollover_times:
        state = _with_rollover_times(es, state)
    return state


def _index_info(
    name: str, described: dict[str, Any], stats: dict[str, Any], is_write: bool
) -> IndexInfo:
    index_settings = described.get("settings", {}).get("index", {})
    stamp = dict(described.get("mappings", {}).get("_meta", {}).get(META_KEY) or {})
    stamped_created = parse_time(stamp.get("created_at"))
    server_created = parse_time(index_settings.get("creation_date")) or datetime.now(UTC)
    primaries = stats.get("primaries", {})
    shard_sizes = [
        copy.get("store", {}).get("size_in_bytes", 0)
        for copies in stats.get("shards", {}).values()
        for copy in copies
        if copy.get("routing", {}).get("primary", True)
    ]
    lifecycle = index_settings.get("lifecycle", {})
    return IndexInfo(
        name=name,
        number=index_number(name),
        is_write_index=is_write,
        created_at=stamped_created or server_created,
        created_at_source="mailchat" if stamped_created else "server",
        # Indices without a stamp predate template versions: version 1 is that template.
        template_version=int(stamp.get("template_version") or 1),
        docs=int(primaries.get("docs", {}).get("count", 0)),
        primary_bytes=int(primaries.get("store", {}).get("size_in_bytes", 0)),
        largest_primary_shard_bytes=int(max(shard_sizes, default=0)),
        lifecycle_setting=lifecycle.get("name") if isinstance(lifecycle, dict) else None,
        stamp=stamp,
    )


def _with_rollover_times(es: Elasticsearch, state: AliasState) -> AliasState:
    successors = {
        str(index.stamp["rolled_over_from"]): index.created_at
        for index in state.indices
        if index.stamp.get("rolled_over_from") and index.created_at_source == "mailchat"
    }
    resolved: list[IndexInfo] = []
    server_times: dict[str, datetime] | None = None
    for index in state.indices:
        if index.is_write_index:
            resolved.append(index)
            continue
        when, source = parse_time(index.stamp.get("rolled_over_at")), "mailchat"
        if when is None and index.name in successors:
            when, source = successors[index.name], "mailchat_successor"
        if when is None:
            if server_times is None:
                server_times = _server_rollover_times(es, state)
            when, source = server_times.get(index.name), "server"
        if when is None:
            when, source = _newest_received_at(es, index.name), "newest_received_at"
        if when is None:
            when, source = index.created_at, "created_at"
        resolved.append(
            dataclasses.replace(index, rolled_over_at=when, rolled_over_at_source=source)
        )
    return AliasState(state.alias, resolved)


def _server_rollover_times(es: Elasticsearch, state: AliasState) -> dict[str, datetime]:
    """Elasticsearch's ``rollover_info`` per index (noida-db always answers ``{}``)."""
    names = ",".join(index.name for index in state.non_write())
    try:
        metadata = es.cluster.state(metric="metadata", index=names).body
    except ApiError as exc:  # some hosted clusters hide the cluster state
        log.info("cluster state unavailable, no server rollover times: %s", exc)
        return {}
    found: dict[str, datetime] = {}
    for name, meta in metadata.get("metadata", {}).get("indices", {}).items():
        info = (meta.get("rollover_info") or {}).get(state.alias) or {}
        when = parse_time(info.get("time"))
        if when is not None:
            found[name] = when
    return found


def _newest_received_at(es: Elasticsearch, index: str) -> datetime | None:
    # A sorted search rather than a max aggregation: both are standard, but noida-db
    # answers null for max/min aggregations on date fields.
    response = es.search(
        index=index,
        size=1,
        sort=[{"received_at": {"order": "desc", "unmapped_type": "date"}}],
        source_includes=["received_at"],
        query={"exists": {"field": "received_at"}},
    )
    hits = response["hits"]["hits"]
    return parse_time(hits[0]["_source"].get("received_at")) if hits else None
