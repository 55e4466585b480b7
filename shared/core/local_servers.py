"""Where ``make run``'s own servers listen: ``DATA_DIR/servers.json``, written by it, read by others.

``make run`` starts redis-server and noida-db on free ports, so a second
terminal cannot guess them: ``flask --app wsgi users create`` used to fail
with "MAILCHAT_REDIS_URL is not set". ``make run`` now records the URLs in
the data directory, and every process that has no URL configured (the CLI,
a second ``make run``) uses the recorded ones if they still answer, saying
so. A configured URL always wins; a file whose servers are gone is ignored.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
import urllib.request
from pathlib import Path
from typing import Any

import redis

from shared.core.settings import Settings

log = logging.getLogger(__name__)

FILE_NAME = "servers.json"
PROBE_TIMEOUT_SECONDS = 2.0


def servers_file(settings: Settings) -> Path:
    return settings.data_path / FILE_NAME


def record(settings: Settings, *, embedded_elasticsearch: bool, owner_pid: int) -> Path:
    """Write the servers ``settings`` points at (atomically: a reader never sees half a file)."""
    path = servers_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "redis_url": settings.redis_url,
        "elasticsearch_url": settings.elasticsearch_url,
        "embedded_elasticsearch": embedded_elasticsearch,
        "pid": owner_pid,
        "recorded_at": time.time(),
    }
    temporary = path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(temporary, path)
    return path


def forget(settings: Settings, owner_pid: int) -> None:
    """Remove the file if this process wrote it (its servers are stopping)."""
    path = servers_file(settings)
    recorded = _read(path)
    if recorded is not None and recorded.get("pid") == owner_pid:
        path.unlink(missing_ok=True)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=PROBE_TIMEOUT_SECONDS, socket_timeout=PROBE_TIMEOUT_SECONDS
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def _http_answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT_SECONDS) as response:
            return bool(response.status < 500)
    except (OSError, ValueError):
        return False


def discover(settings: Settings) -> tuple[Settings, list[str]]:
    """Fill empty server URLs from a live ``servers.json``; also say what was used and why."""
    if settings.redis_url and settings.elasticsearch_url:
        return settings, []
    path = servers_file(settings)
    recorded = _read(path)
    if recorded is None:
        return settings, []
    notes: list[str] = []
    changes: dict[str, Any] = {}
    redis_url = str(recorded.get("redis_url") or "")
    if not settings.redis_url and redis_url:
        if _redis_answers(redis_url):
            changes["redis_url"] = redis_url
            notes.append(f"using Redis {redis_url} (recorded by make run in {path})")
        else:
            notes.append(f"Redis {redis_url} recorded in {path} does not answer; ignored")
    es_url = str(recorded.get("elasticsearch_url") or "")
    if not settings.elasticsearch_url and es_url:
        if _http_answers(es_url):
            changes["elasticsearch_url"] = es_url
            if recorded.get("embedded_elasticsearch"):
                changes["embedded_search_engine"] = True
            notes.append(f"using Elasticsearch {es_url} (recorded by make run in {path})")
        else:
            notes.append(f"Elasticsearch {es_url} recorded in {path} does not answer; ignored")
    return dataclasses.replace(settings, **changes), notes
