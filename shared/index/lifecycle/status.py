"""``index status``: the alias, its write index and every index behind it, as JSON."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import redis
from elasticsearch import Elasticsearch

from shared.core.settings import Settings
from shared.index.lifecycle.policy import LifecycleError, Policy
from shared.index.lifecycle.runs import last_runs, server_template_version
from shared.index.lifecycle.state import read_state
from shared.index.template import TEMPLATE_VERSION


def status(
    es: Elasticsearch, r: redis.Redis, settings: Settings, *, now: datetime | None = None
) -> dict[str, Any]:
    """Everything an operator needs to see what the lifecycle jobs will do next.

    Read-only, no lock: it may show a moment mid-rollover, never changes one.
    """
    policy = Policy.from_settings(settings)
    now = now or datetime.now(UTC)
    state = read_state(es, settings, resolve_rollover_times=True)
    indices = []
    for index in state.indices:
        entry = index.as_dict()
        entry["age_seconds"] = int(index.age_seconds(now))
        if index.rolled_over_at is not None:
            entry["delete_after"] = (index.rolled_over_at + policy.retention).isoformat()
        indices.append(entry)
    template: dict[str, Any] = {"name": settings.index_template, "code_version": TEMPLATE_VERSION}
    try:
        template["version"] = server_template_version(es, settings)
    except LifecycleError as exc:  # shown, not fatal: status is what one reads to find out
        template["version"], template["problem"] = None, str(exc)
    return {
        "alias": state.alias,
        "write_index": state.write_index.name,
        "lifecycle_owner": policy.owner,
        "policy": policy.as_dict(),
        "template": template,
        "indices": indices,
        "last_runs": last_runs(r, settings),
    }
