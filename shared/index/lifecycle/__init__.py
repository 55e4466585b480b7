"""Index lifecycle run by the application: the seed's policy ``emails-rolling-90d``.

Rollover at 30 days or 20 GB of primary shard, deletion 90 days after
rollover, run by Celery beat (``workers/index.py``) and by operators
(``flask --app wsgi index ...``), the same way on Elasticsearch, OpenSearch
and noida-db (which has no ILM). With ``MAILCHAT_LIFECYCLE_OWNER=elasticsearch``
native ILM (``deploy/ilm/``) owns it and these jobs stand down.

- ``policy``: settings parsed into conditions; ``LifecycleError``.
- ``state``: what lies behind the alias, and the traps refused there.
- ``jobs``: ``rollover`` and ``retention``, under one Redis lock per alias.
- ``placement``: which concrete index holds a document, so updates after a
  rollover go there instead of into the write index.
- ``migrate``: move indices to a new template version behind an atomic switch.
- ``status``: the JSON ``index status`` prints.
"""

from shared.index.lifecycle.jobs import (
    RetentionResult,
    RolloverResult,
    beat_schedule,
    retention,
    rollover,
)
from shared.index.lifecycle.migrate import MigrateResult, migrate
from shared.index.lifecycle.policy import LifecycleError, Policy
from shared.index.lifecycle.status import status

__all__ = [
    "LifecycleError",
    "MigrateResult",
    "Policy",
    "RetentionResult",
    "RolloverResult",
    "beat_schedule",
    "migrate",
    "retention",
    "rollover",
    "status",
]
