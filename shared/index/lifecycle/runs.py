"""What every lifecycle job shares: the per-alias lock, the one-owner check, the record of
runs, and ``run_job``, the skeleton rollover, retention and migrate each run inside.

``run_job`` is the one place that decides "stand down", "locked" and "failed": a job only
supplies its body (what it does while holding the lock) and how to build and finish
its result, so the three cannot drift apart in how they refuse, count and record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import redis
from elasticsearch import Elasticsearch, NotFoundError

from shared.core import metrics
from shared.core.keys import RedisKeys
from shared.core.locks import RedisLock
from shared.core.settings import Settings
from shared.core.task_names import INDEX_ROLLOVER
from shared.index.lifecycle.policy import LifecycleError, Policy
from shared.index.lifecycle.state import AliasState

log = logging.getLogger(__name__)

R = TypeVar("R")


def run_job(
    r: redis.Redis,
    settings: Settings,
    *,
    policy: Policy,
    dry_run: bool,
    owner: str,
    make: Callable[[str, str], R],
    finish: Callable[[R], R],
    body: Callable[[RedisLock], R],
    stood_down: str | None = None,
) -> R:
    """Run ``body`` under the lifecycle lock (not taken on a dry run).

    ``make(outcome, message)`` builds the job's result for the outcomes decided here:
    ``stood_down`` (when ``stood_down`` is given and native ILM owns the lifecycle),
    ``locked`` (another run holds the lock) and ``failed`` (the body raised; recorded,
    then re-raised). ``finish`` counts, records and logs a result; it sees every one.
    """
    if stood_down is not None and not policy.runs_here:
        return finish(make("stood_down", stood_down))
    lock = lifecycle_lock(r, settings, owner)
    if not dry_run and not lock.acquire():
        return finish(make("locked", f"another run holds {lock.key} ({lock.holder()})"))
    try:
        result = body(lock)
    except Exception as exc:
        if not dry_run:
            finish(make("failed", str(exc)[:500]))
        raise
    finally:
        if not dry_run:
            lock.release()
    return finish(result)


def lifecycle_lock(r: redis.Redis, settings: Settings, owner: str) -> RedisLock:
    """The per-alias lock every lifecycle actor (rollover, retention, migrate) takes."""
    key = RedisKeys(settings.key_prefix).index_lifecycle_lock(settings.index_alias)
    return RedisLock(r, key, settings.lifecycle_lock_seconds, owner=owner)


def refuse_second_owner(state: AliasState, policy: Policy) -> None:
    """One lifecycle owner, never both: indices under an ILM policy are not Mailchat's to roll."""
    managed = [index.name for index in state.indices if index.lifecycle_setting]
    if policy.runs_here and managed:
        raise LifecycleError(
            f"{', '.join(managed)} carry index.lifecycle.name (native ILM manages them); set "
            f"MAILCHAT_LIFECYCLE_OWNER=elasticsearch so Mailchat's jobs stand down, or remove "
            f"the policy from the template and those indices"
        )


def observe_write_index(state: AliasState, now: datetime) -> None:
    write = state.write_index
    metrics.INDEX_WRITE_INDEX_AGE.set(max(0.0, write.age_seconds(now)))
    metrics.INDEX_WRITE_INDEX_PRIMARY_BYTES.set(write.primary_bytes)


def record_run(r: redis.Redis, settings: Settings, job: str, outcome: str, message: str) -> None:
    """Remember each job's last real run, for `index status` and for operators."""
    entry = {"outcome": outcome, "message": message, "at": datetime.now(UTC).isoformat()}
    r.hset(
        RedisKeys(settings.key_prefix).index_lifecycle_runs(settings.index_alias),
        job,
        json.dumps(entry),
    )


def last_runs(r: redis.Redis, settings: Settings) -> dict[str, Any]:
    key = RedisKeys(settings.key_prefix).index_lifecycle_runs(settings.index_alias)
    return {str(job): json.loads(value) for job, value in r.hgetall(key).items()}


def job_policy(r: redis.Redis, settings: Settings, job: str, dry_run: bool) -> Policy:
    """The policy from settings; a setting it cannot read is a failed run, counted and raised."""
    try:
        return Policy.from_settings(settings)
    except LifecycleError as exc:
        if not dry_run:
            if job == INDEX_ROLLOVER:
                metrics.INDEX_ROLLOVERS.labels(outcome="failed").inc()
            record_run(r, settings, job, "failed", str(exc))
        raise


def server_template_version(es: Elasticsearch, settings: Settings) -> int:
    """The version of the template new indices are built from (the server's, not the code's)."""
    try:
        found = es.indices.get_index_template(name=settings.index_template)["index_templates"]
    except NotFoundError as exc:
        raise LifecycleError(
            f"index template {settings.index_template} is missing, so a new index would get no "
            f"mappings; put it with `flask --app wsgi index bootstrap`"
        ) from exc
    return int(found[0]["index_template"].get("version") or 1)
