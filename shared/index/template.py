"""The email index: its template, its first index and its write alias.

Names are fixed by the seed documents: template ``gmail-emails-template``
matching ``gmail_emails-*``, first index ``gmail_emails-000001`` behind the
write alias ``gmail_emails``. Writers always write to the alias and readers
search it (or the pattern), so rolling over to ``-000002`` later changes
nothing for either.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from elasticsearch import Elasticsearch

from shared.core.settings import Settings

log = logging.getLogger(__name__)

# Lowercase + kstem: "Interviews" finds "interview", "recruiters" finds "recruiter".
# kstem rather than the built-in "english" analyzer (porter) because it stems
# less aggressively and, on noida-db (which analyzes text at query time), it
# answers in about half the time.
TEXT_ANALYZER = "mail_text"
ANALYSIS: dict[str, Any] = {
    "analyzer": {
        TEXT_ANALYZER: {"type": "custom", "tokenizer": "standard", "filter": ["lowercase", "kstem"]}
    }
}

EMAIL_MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "owner_id": {"type": "keyword"},
        "message_key": {"type": "keyword"},
        "message_id": {"type": "keyword", "ignore_above": 998},
        "thread_id": {"type": "keyword"},
        "subject": {
            "type": "text",
            "analyzer": TEXT_ANALYZER,
            "fields": {"keyword": {"type": "keyword", "ignore_above": 512}},
        },
        "from_address": {"type": "keyword"},
        "from_name": {
            "type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
        },
        "to": {"type": "keyword"},
        "cc": {"type": "keyword"},
        "received_at": {"type": "date"},
        "labels": {"type": "keyword"},
        "body": {"type": "text", "analyzer": TEXT_ANALYZER},
        "snippet": {"type": "text", "index": False},
        "has_attachment": {"type": "boolean"},
        "attachment_names": {
            "type": "text",
            "fields": {"keyword": {"type": "keyword", "ignore_above": 256}},
        },
        "list_unsubscribe": {"type": "keyword", "index": False},
        # Derived at ingest and by `index migrate` (shared/index/derived.py); the names are
        # what the assistant filters on: keep them.
        "category": {"type": "keyword"},
        "from_me": {"type": "boolean"},
        "attachment_types": {"type": "keyword"},
        "has_unsubscribe": {"type": "boolean"},
        "unread": {"type": "boolean"},
        "size": {"type": "long"},
        "parse_warnings": {"type": "keyword", "ignore_above": 256},
        "source": {"type": "keyword"},
        "indexed_at": {"type": "date"},
    },
}


# Bump with every change to the template's settings or mappings; `index migrate`
# then reindexes existing indices into the new generation (shared/lifecycle/migrate.py).
# 2: category, from_me, attachment_types, has_unsubscribe, unread (migrate fills them).
TEMPLATE_VERSION = 2
LIFECYCLE_POLICY = "emails-rolling-90d"
# Key under each index's mappings ``_meta`` where Mailchat stamps when it created the
# index (and, once rolled over, when), in its own clock: see shared/lifecycle/state.py.
META_KEY = "mailchat"


class IndexBootstrapError(RuntimeError):
    """The cluster holds something bootstrap must not paper over."""


def pattern(settings: Settings) -> str:
    """Index pattern covering every generation behind the alias."""
    return f"{settings.index_alias}-*"


def first_index(settings: Settings) -> str:
    return f"{settings.index_alias}-000001"


def index_meta(created_at: datetime, template_version: int, **extra: str) -> dict[str, Any]:
    """The ``_meta`` stamp for an index Mailchat creates (sent in the create request itself)."""
    return {
        META_KEY: {
            "created_at": created_at.astimezone(UTC).isoformat(),
            "template_version": template_version,
            **extra,
        }
    }


def template_body(settings: Settings) -> dict[str, Any]:
    index_settings: dict[str, Any] = {
        "number_of_shards": 1,
        "number_of_replicas": 0,
        "refresh_interval": "1s",
        "analysis": ANALYSIS,
    }
    if settings.lifecycle_owner == "elasticsearch":
        # Native ILM owns the lifecycle (deploy/ilm/): Mailchat's jobs stand down.
        index_settings["index.lifecycle.name"] = LIFECYCLE_POLICY
        index_settings["index.lifecycle.rollover_alias"] = settings.index_alias
    return {
        "index_patterns": [pattern(settings)],
        "priority": 100,
        "version": TEMPLATE_VERSION,
        "template": {"settings": index_settings, "mappings": EMAIL_MAPPINGS},
        "_meta": {
            "lifecycle_policy": LIFECYCLE_POLICY,
            "managed_by": "mailchat",
            "lifecycle_owner": settings.lifecycle_owner,
        },
    }


def bootstrap(es: Elasticsearch, settings: Settings) -> list[str]:
    """Create or update the template, and create the first index with the write alias.

    Idempotent: a second run updates the template (so mapping additions reach
    the next generation) and leaves existing indices alone. Returns what it did.
    """
    actions = []
    es.indices.put_index_template(name=settings.index_template, **template_body(settings))
    actions.append(f"template {settings.index_template} put")
    if es.indices.exists_alias(name=settings.index_alias):
        actions.append(f"alias {settings.index_alias} present")
        return actions
    if es.indices.exists(index=first_index(settings)):
        raise IndexBootstrapError(
            f"index {first_index(settings)} exists without the write alias {settings.index_alias}; "
            f"add it with POST _aliases "
            f'{{"actions":[{{"add":{{"index":"{first_index(settings)}",'
            f'"alias":"{settings.index_alias}","is_write_index":true}}}}]}}'
        )
    es.indices.create(
        index=first_index(settings),
        aliases={settings.index_alias: {"is_write_index": True}},
        mappings={"_meta": index_meta(datetime.now(UTC), TEMPLATE_VERSION)},
    )
    actions.append(f"index {first_index(settings)} created with write alias {settings.index_alias}")
    log.info("bootstrapped %s", ", ".join(actions))
    return actions


def alias_ready(es: Elasticsearch, settings: Settings) -> bool:
    """True when the write alias exists (what /readyz checks)."""
    return bool(es.indices.exists_alias(name=settings.index_alias))
