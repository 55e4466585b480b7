"""``index migrate``: move every index behind the alias onto the current template version.

The template carries a version (``shared.index.template.TEMPLATE_VERSION``) and every
index Mailchat creates is stamped with the version it was built from. Migrate
puts the new template, then, oldest index first:

1. blocks writes on the old index (searches keep answering from it);
2. creates its replacement ``<alias>-v<N>-<same number>`` from the new
   template, carrying over the old index's creation and rollover times, so
   retention still deletes it on the old schedule;
3. copies every document into it, recomputing its derived fields (category,
   from_me, ...: ``shared.index.lifecycle.refill``) from the stored ``_source``,
   and checks the counts match;
4. in one atomic ``_aliases`` call adds the replacement to the alias and
   removes (deletes) the old index.

A search over the alias sees the old index until step 4 and the replacement
from then on: never both, never neither. A non-empty write index is first
rolled over (the new write index is built from the new template); an empty
one is replaced in the same atomic call. While an index is being copied,
updates to its documents fail with 403 (the write block): the importer counts
them as failed, the sync retries, and after the switch they land in the
replacement.

The copy is a scroll over the (write-blocked) source and bulk creates into the
target, run here rather than by the server's ``_reindex``, because the derived
fields come from Python rules; a thread keeps the lifecycle lock alive meanwhile.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from elasticsearch import Elasticsearch

from shared.core.locks import RedisLock
from shared.core.settings import Settings
from shared.index.lifecycle.jobs import roll_write_index
from shared.index.lifecycle.policy import LifecycleError, Policy
from shared.index.lifecycle.refill import OwnerAddresses, copy_refilled
from shared.index.lifecycle.runs import refuse_second_owner, run_job
from shared.index.lifecycle.state import AliasState, IndexInfo, index_name, read_state
from shared.index.template import TEMPLATE_VERSION, index_meta, template_body

log = logging.getLogger(__name__)

StepCallback = Callable[[str, str], None]


@dataclass
class MigrateResult:
    outcome: str  # migrated, up_to_date, would_migrate, locked
    alias: str
    template_version: int
    dry_run: bool
    message: str
    steps: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def migrate(
    es: Elasticsearch,
    r: redis.Redis,
    settings: Settings,
    *,
    now: datetime | None = None,
    template_version: int = TEMPLATE_VERSION,
    template: dict[str, Any] | None = None,
    dry_run: bool = False,
    owner: str = "manual",
    on_step: StepCallback | None = None,
    owner_addresses: OwnerAddresses | None = None,
) -> MigrateResult:
    """Bring every index behind the alias to ``template_version``; safe to re-run.

    ``template`` defaults to the code's template body; ``on_step(step, index)``
    is called after each step (tests search the alias there); ``owner_addresses``
    maps an owner id to their own addresses, so ``from_me`` is recomputed too.
    """
    policy = Policy.from_settings(settings)
    now = now or datetime.now(UTC)
    new_template = {**(template if template is not None else template_body(settings))}
    new_template["version"] = template_version
    step = on_step or (lambda _step, _index: None)
    alias = settings.index_alias

    def body(lock: RedisLock) -> MigrateResult:
        state = read_state(es, settings, resolve_rollover_times=True)
        refuse_second_owner(state, policy)
        stale = _stale_indices(state, template_version)
        result = MigrateResult(
            "up_to_date",
            alias,
            template_version,
            dry_run,
            f"every index behind {alias} is at template version {template_version}",
            steps=[{"source": index.name, "docs": index.docs} for index in stale],
        )
        if dry_run:
            if stale:
                result.outcome = "would_migrate"
                result.message = f"would move {len(stale)} indices to version {template_version}"
            return result
        es.indices.put_index_template(name=settings.index_template, **new_template)
        step("template", settings.index_template)
        if stale:
            _migrate_indices(
                es, settings, lock, state, stale, template_version, now, step, result,
                owner_addresses,
            )  # fmt: skip
            result.outcome = "migrated"
            result.message = f"moved {len(result.steps)} indices to version {template_version}"
        return result

    def finish(result: MigrateResult) -> MigrateResult:
        if not result.dry_run:
            log.info("migrate %s: %s (%s)", alias, result.outcome, result.message)
        return result

    return run_job(
        r,
        settings,
        policy=policy,
        dry_run=dry_run,
        owner=owner,
        make=lambda outcome, message: MigrateResult(
            outcome, alias, template_version, dry_run, message
        ),
        finish=finish,
        body=body,
    )


def _stale_indices(state: AliasState, version: int) -> list[IndexInfo]:
    ahead = [index.name for index in state.indices if index.template_version > version]
    if ahead:
        raise LifecycleError(
            f"{', '.join(ahead)} were built from a template newer than version {version}; "
            f"this code is older than the cluster: deploy the newer code instead of migrating"
        )
    return [index for index in state.indices if index.template_version < version]


def _migrate_indices(
    es: Elasticsearch,
    settings: Settings,
    lock: RedisLock,
    state: AliasState,
    stale: list[IndexInfo],
    version: int,
    now: datetime,
    step: StepCallback,
    result: MigrateResult,
    owners: OwnerAddresses | None,
) -> None:
    result.steps = []
    to_copy = [index for index in stale if not index.is_write_index]
    write = state.write_index
    if write in stale:
        rolled = _retire_write_index(es, settings, write, version, now, step)
        if rolled is not None:
            to_copy.append(rolled)
        else:
            result.steps.append({"source": write.name, "target": "(replaced empty)", "docs": 0})
    for index in to_copy:
        if not lock.extend():
            raise LifecycleError(f"lost the lifecycle lock {lock.key}; re-run migrate")
        target, docs = _copy(es, settings, lock, index, version, step, owners)
        result.steps.append({"source": index.name, "target": target, "docs": docs})


def _retire_write_index(
    es: Elasticsearch,
    settings: Settings,
    write: IndexInfo,
    version: int,
    now: datetime,
    step: StepCallback,
) -> IndexInfo | None:
    """Move writes to a new-version index. Returns the old write index if it must be copied."""
    alias = settings.index_alias
    number = write.number or 0
    # Block writes first, so "empty" cannot change between counting and switching.
    es.indices.put_settings(index=write.name, settings={"index.blocks.write": True})
    try:
        es.indices.refresh(index=write.name)
        empty = es.count(index=write.name)["count"] == 0
        if empty:  # same number: the replacement takes the empty index's place
            replacement = index_name(alias, number, version)
            es.indices.create(index=replacement, mappings={"_meta": index_meta(now, version)})
            es.indices.update_aliases(
                actions=[
                    {"add": {"index": replacement, "alias": alias, "is_write_index": True}},
                    {"remove_index": {"index": write.name}},
                ]
            )
    except Exception:
        _undo_copy(es, write.name, index_name(alias, number, version))
        raise
    if empty:
        step("replaced_empty_write_index", replacement)
        return None
    es.indices.put_settings(index=write.name, settings={"index.blocks.write": False})
    target = index_name(alias, number + 1, version)
    outcome = roll_write_index(es, settings, write, target, version, now)
    if outcome != "rolled_over":
        raise LifecycleError(f"could not roll {write.name} over ({outcome}); re-run migrate")
    step("rolled_over", target)
    return dataclasses.replace(
        write, is_write_index=False, rolled_over_at=now, rolled_over_at_source="mailchat"
    )


def _copy(
    es: Elasticsearch,
    settings: Settings,
    lock: RedisLock,
    source: IndexInfo,
    version: int,
    step: StepCallback,
    owners: OwnerAddresses | None,
) -> tuple[str, int]:
    alias = settings.index_alias
    if source.number is None:
        raise LifecycleError(f"{source.name} has no generation number; migrate it by hand")
    target = index_name(alias, source.number, version)
    if es.indices.exists(index=target):
        # Left by a run that crashed before its switch (a switched target is behind the
        # alias, and then its source would be gone): its copy may be partial.
        log.warning("deleting %s left by an interrupted migrate", target)
        es.indices.delete(index=target)
    extra = {"migrated_from": source.name}
    if source.rolled_over_at is not None:
        extra["rolled_over_at"] = source.rolled_over_at.astimezone(UTC).isoformat()
    es.indices.put_settings(index=source.name, settings={"index.blocks.write": True})
    step("blocked", source.name)
    try:
        es.indices.create(
            index=target, mappings={"_meta": index_meta(source.created_at, version, **extra)}
        )
        step("created", target)
        with lock.kept_alive() as lost:
            copy_refilled(es, source.name, target, owners)
        if lost.is_set():
            raise LifecycleError(f"lost the lifecycle lock while copying {source.name}")
        es.indices.refresh(index=target)
        copied = int(es.count(index=target)["count"])
        original = int(es.count(index=source.name)["count"])
        if copied != original:
            raise LifecycleError(
                f"copy of {source.name} into {target} holds {copied} documents, not {original}"
            )
        step("copied", target)
        es.indices.update_aliases(
            actions=[
                {"add": {"index": target, "alias": alias, "is_write_index": False}},
                {"remove_index": {"index": source.name}},
            ]
        )
        step("switched", target)
        return target, copied
    except Exception:
        _undo_copy(es, source.name, target)
        raise


def _undo_copy(es: Elasticsearch, source: str, target: str) -> None:
    """Put things back as they were: the source writable and behind the alias, no target."""
    try:
        if es.indices.exists(index=source):
            es.indices.put_settings(index=source, settings={"index.blocks.write": False})
            if es.indices.exists(index=target):
                es.indices.delete(index=target)
    except Exception as exc:
        log.error("could not undo the copy of %s into %s: %r", source, target, exc)
