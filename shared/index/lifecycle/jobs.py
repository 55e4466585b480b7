"""The two beat jobs: roll the write alias over, and delete indices past retention.

Both take the clock as an argument (``now``) instead of reading it, so a test
can run 200 days in seconds, and both hold one Redis lock per alias while
they act, so two beats, or a beat and an operator's CLI run, never act at
once. The lock is a courtesy; the requests are safe on their own too:

- rollover names its target (``POST <alias>/_rollover/<alias>-000008``), so a
  second rollover computed from the same write index fails with "already
  exists" instead of rolling twice, and it sends ``max_docs: 1`` so the
  server itself refuses to roll an empty index;
- retention never deletes the write index, re-checked right before each delete.

The age and size conditions (``MAILCHAT_ROLLOVER_MAX_AGE``,
``MAILCHAT_ROLLOVER_MAX_PRIMARY_SHARD_SIZE``) are evaluated here, against the
``now`` the job was given, not by the server against its own clock; that is
what lets the same code run on Elasticsearch, OpenSearch and noida-db (which
has no ILM) and be tested with a controlled clock.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from elasticsearch import BadRequestError, Elasticsearch

from shared.core import metrics
from shared.core.locks import RedisLock
from shared.core.settings import Settings
from shared.core.task_names import INDEX_RETENTION, INDEX_ROLLOVER
from shared.index.lifecycle.policy import (
    OWNER_MAILCHAT,
    OWNERS,
    LifecycleError,
    Policy,
    format_duration,
    format_size,
)
from shared.index.lifecycle.runs import (
    job_policy,
    observe_write_index,
    record_run,
    refuse_second_owner,
    run_job,
    server_template_version,
)
from shared.index.lifecycle.state import AliasState, IndexInfo, index_name, read_state
from shared.index.template import META_KEY, index_meta

log = logging.getLogger(__name__)

# index_rollovers_total{outcome}: a closed vocabulary.
ROLLOVER_OUTCOMES = ("rolled_over", "not_due", "empty", "locked", "stood_down", "failed")
# The server-side guard sent with every rollover: roll only an index holding documents.
SERVER_CONDITIONS = {"max_docs": 1}


@dataclass
class RolloverResult:
    """What a rollover check saw and did (or, for a dry run, would do)."""

    outcome: str
    alias: str
    dry_run: bool
    message: str
    write_index: str | None = None
    new_index: str | None = None
    conditions: dict[str, str] = field(default_factory=dict)
    current: dict[str, Any] = field(default_factory=dict)
    met: dict[str, bool] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RetentionResult:
    """Indices deleted (or, for a dry run, that would be) and indices kept, with why."""

    outcome: str
    alias: str
    dry_run: bool
    message: str
    retention_days: int = 0
    cutoff: str | None = None
    deleted: list[dict[str, Any]] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _finish_rollover(r: redis.Redis, settings: Settings, result: RolloverResult) -> RolloverResult:
    if not result.dry_run:
        metrics.INDEX_ROLLOVERS.labels(outcome=result.outcome).inc()
        record_run(r, settings, INDEX_ROLLOVER, result.outcome, result.message)
    log.info("rollover %s: %s (%s)", result.alias, result.outcome, result.message)
    return result


def rollover(
    es: Elasticsearch,
    r: redis.Redis,
    settings: Settings,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    owner: str = "manual",
) -> RolloverResult:
    """Roll the write alias over when its write index is old or big enough, never when empty.

    Raises ``LifecycleError`` (after counting outcome ``failed``) when the
    alias is missing, unmarked or otherwise unsafe to act on.
    """
    now = now or datetime.now(UTC)
    alias = settings.index_alias
    policy = job_policy(r, settings, INDEX_ROLLOVER, dry_run)

    def body(_lock: RedisLock) -> RolloverResult:
        state = read_state(es, settings, resolve_rollover_times=False)
        refuse_second_owner(state, policy)
        observe_write_index(state, now)
        result = _evaluate(state, policy, now, dry_run)
        if result.outcome == "due":
            version = server_template_version(es, settings)
            result.new_index = index_name(alias, (state.write_index.number or 0) + 1, version)
            if dry_run:
                result.outcome = "would_roll_over"
                result.message = f"would roll {result.write_index} over to {result.new_index}"
            else:
                _roll(es, settings, state.write_index, result, version, now)
        return result

    return run_job(
        r,
        settings,
        policy=policy,
        dry_run=dry_run,
        owner=owner,
        make=lambda outcome, message: RolloverResult(outcome, alias, dry_run, message),
        finish=lambda result: _finish_rollover(r, settings, result),
        body=body,
        stood_down="MAILCHAT_LIFECYCLE_OWNER=elasticsearch: native ILM rolls this alias over",
    )


def _evaluate(state: AliasState, policy: Policy, now: datetime, dry_run: bool) -> RolloverResult:
    write = state.write_index
    age = write.age_seconds(now)
    shard = write.largest_primary_shard_bytes
    met = {
        "max_age": age >= policy.max_age.total_seconds(),
        "max_primary_shard_size": shard >= policy.max_primary_shard_bytes,
    }
    result = RolloverResult(
        outcome="due",
        alias=state.alias,
        dry_run=dry_run,
        message="",
        write_index=write.name,
        conditions=policy.conditions(),
        current={
            "age": format_duration(age),
            "age_seconds": int(age),
            "created_at": write.created_at.isoformat(),
            "largest_primary_shard": format_size(shard),
            "largest_primary_shard_bytes": shard,
            "docs": write.docs,
        },
        met=met,
    )
    if not any(met.values()):
        result.outcome = "not_due"
        result.message = f"{write.name} meets no condition yet; nothing to do"
    elif write.docs == 0:
        result.outcome = "empty"
        result.message = f"{write.name} holds no documents; an empty write index is never rolled"
    return result


def _roll(
    es: Elasticsearch,
    settings: Settings,
    write: IndexInfo,
    result: RolloverResult,
    version: int,
    now: datetime,
) -> None:
    assert result.new_index is not None
    outcome = roll_write_index(es, settings, write, result.new_index, version, now)
    result.outcome = "not_due" if outcome == "raced" else outcome
    result.message = {
        "rolled_over": f"rolled {write.name} over to {result.new_index}",
        "empty": f"the server found {write.name} empty at rollover time; nothing done",
        "raced": f"another run already rolled {write.name} over; nothing done",
    }[outcome]


def roll_write_index(
    es: Elasticsearch,
    settings: Settings,
    write: IndexInfo,
    new_index: str,
    version: int,
    now: datetime,
) -> str:
    """One rollover request to a named target; returns rolled_over, empty or raced."""
    try:
        response = es.indices.rollover(
            alias=settings.index_alias,
            new_index=new_index,
            conditions=SERVER_CONDITIONS,
            # The new index's stamp travels in the rollover request itself: its creation
            # time and its predecessor's rollover time are recorded atomically with it.
            mappings={"_meta": index_meta(now, version, rolled_over_from=write.name)},
        )
    except BadRequestError as exc:
        if exc.error != "resource_already_exists_exception":
            raise
        _explain_existing_target(es, settings, write, new_index)
        return "raced"
    if not response.get("rolled_over"):
        return "empty"
    stamp = {**write.stamp, "rolled_over_at": now.astimezone(UTC).isoformat()}
    try:
        es.indices.put_mapping(index=write.name, meta={META_KEY: stamp})
    except Exception as exc:  # the successor's rolled_over_from stamp still dates it
        log.warning("could not stamp rolled_over_at on %s: %r", write.name, exc)
    return "rolled_over"


def _explain_existing_target(
    es: Elasticsearch, settings: Settings, write: IndexInfo, target: str
) -> None:
    """The target existed: fine if it is now the write index, a trap to report otherwise."""
    aliases = es.indices.get_alias(name=settings.index_alias).body
    current = [
        name
        for name, body in aliases.items()
        if body["aliases"][settings.index_alias].get("is_write_index")
    ]
    if current != [target]:
        raise LifecycleError(
            f"cannot roll {write.name} over: {target} already exists but is not the write index "
            f"of {settings.index_alias}; inspect it, then delete it (DELETE {target}) or add it "
            f"to the alias as the write index"
        )


def retention(
    es: Elasticsearch,
    r: redis.Redis,
    settings: Settings,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    owner: str = "manual",
) -> RetentionResult:
    """Delete the non-write indices behind the alias rolled over more than retention ago."""
    now = now or datetime.now(UTC)
    alias = settings.index_alias
    policy = job_policy(r, settings, INDEX_RETENTION, dry_run)
    retention_days = policy.retention.days

    def body(lock: RedisLock) -> RetentionResult:
        if retention_days == 0:  # MAILCHAT_RETENTION_DAYS=0 keeps all mail, so every index
            return RetentionResult(
                "nothing_due", alias, dry_run, "MAILCHAT_RETENTION_DAYS=0 keeps everything", 0
            )
        state = read_state(es, settings, resolve_rollover_times=True)
        refuse_second_owner(state, policy)
        observe_write_index(state, now)
        cutoff = now - policy.retention
        result = RetentionResult("nothing_due", alias, dry_run, "", retention_days)
        result.cutoff = cutoff.isoformat()
        for index in state.non_write():
            assert index.rolled_over_at is not None  # resolved by read_state
            entry = {
                "name": index.name,
                "docs": index.docs,
                "rolled_over_at": index.rolled_over_at.isoformat(),
                "rolled_over_at_source": index.rolled_over_at_source,
                "delete_after": (index.rolled_over_at + policy.retention).isoformat(),
            }
            if index.rolled_over_at < cutoff:
                if not dry_run:
                    _delete_non_write(es, settings, lock, index.name)
                result.deleted.append(entry)
            else:
                result.kept.append(entry)
        names = ", ".join(entry["name"] for entry in result.deleted)
        if result.deleted:
            result.outcome = "would_delete" if dry_run else "deleted"
            result.message = f"{'would delete' if dry_run else 'deleted'} {names}"
        else:
            result.message = f"no index behind {alias} was rolled over before {result.cutoff}"
        return result

    return run_job(
        r,
        settings,
        policy=policy,
        dry_run=dry_run,
        owner=owner,
        make=lambda outcome, message: RetentionResult(
            outcome, alias, dry_run, message, retention_days
        ),
        finish=lambda result: _finish_retention(r, settings, result),
        body=body,
        stood_down="MAILCHAT_LIFECYCLE_OWNER=elasticsearch: native ILM deletes old indices",
    )


def _delete_non_write(es: Elasticsearch, settings: Settings, lock: RedisLock, name: str) -> None:
    if not lock.extend():
        raise LifecycleError(f"lost the lifecycle lock {lock.key} before deleting {name}; retry")
    aliases = es.indices.get_alias(index=name, name=settings.index_alias).body
    if aliases.get(name, {}).get("aliases", {}).get(settings.index_alias, {}).get("is_write_index"):
        raise LifecycleError(f"{name} became the write index of {settings.index_alias}; kept")
    es.indices.delete(index=name)
    metrics.INDEX_RETENTION_DELETED.inc()
    log.info("retention deleted %s", name)


def _finish_retention(
    r: redis.Redis, settings: Settings, result: RetentionResult
) -> RetentionResult:
    if not result.dry_run:
        record_run(r, settings, INDEX_RETENTION, result.outcome, result.message)
    log.info("retention %s: %s (%s)", result.alias, result.outcome, result.message)
    return result


def beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    """Celery beat entries for the two jobs; none when native ILM owns the lifecycle.

    Plain data (no Celery import): ``celery_app`` merges it into ``beat_schedule``.
    A run that waited longer than its interval in the queue expires instead of
    piling up behind the next one. Only the owner is checked here (every process
    builds this); the other lifecycle settings fail the job that reads them.
    """
    if settings.lifecycle_owner not in OWNERS:
        raise LifecycleError(
            f"MAILCHAT_LIFECYCLE_OWNER={settings.lifecycle_owner!r} must be one of "
            f"{', '.join(OWNERS)}"
        )
    if settings.lifecycle_owner != OWNER_MAILCHAT:
        return {}
    return {
        INDEX_ROLLOVER: {
            "task": INDEX_ROLLOVER,
            "schedule": float(settings.rollover_interval_seconds),
            "options": {"expires": float(settings.rollover_interval_seconds)},
        },
        INDEX_RETENTION: {
            "task": INDEX_RETENTION,
            "schedule": float(settings.retention_interval_seconds),
            "options": {"expires": float(settings.retention_interval_seconds)},
        },
    }
