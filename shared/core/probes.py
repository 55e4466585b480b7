"""Readiness probes: each does for real what a request needs, and says what failed.

Used by ``/readyz`` (web/api/health.py). They live here because they build Redis
keys and talk to the servers, which views do not do; each returns ``"ok"`` or
a short reason, and raises on a transport error (the caller names it).
"""

from __future__ import annotations

import secrets
import time

import redis
from elasticsearch import Elasticsearch

from shared.core.keys import RedisKeys
from shared.core.settings import Settings


def redis_round_trip(r: redis.Redis, settings: Settings, instance: str) -> str:
    """Write a random value and read it back (a read-only replica or a full disk fails)."""
    key = RedisKeys(settings.key_prefix).readyz_probe(instance)
    token = secrets.token_hex(8)
    r.set(key, token, ex=10)
    read = r.get(key)
    value = read.decode() if isinstance(read, bytes) else read
    return "ok" if value == token else "read back a different value"


def pubsub_round_trip(r: redis.Redis, settings: Settings, instance: str, timeout: float) -> str:
    """Publish on a private channel and receive it: the doorbells depend on pub/sub."""
    channel = RedisKeys(settings.key_prefix).readyz_channel(instance)
    token = secrets.token_hex(8)
    pubsub = r.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
    try:
        pubsub.subscribe(channel)
        r.publish(channel, token)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=max(0.01, deadline - time.monotonic()))
            if message is None:
                continue
            data = message.get("data")
            if (data.decode() if isinstance(data, bytes) else data) == token:
                return "ok"
        return "message not received"
    finally:
        pubsub.close()


def write_alias(es: Elasticsearch, settings: Settings, timeout: float) -> str:
    """The write alias exists and points at a write index (where imports and syncs write)."""
    client = es.options(request_timeout=timeout)
    alias = settings.index_alias
    if not client.indices.exists_alias(name=alias):
        return "write alias missing"
    indices = dict(client.indices.get_alias(name=alias))
    flags = [
        body.get("aliases", {}).get(alias, {}).get("is_write_index") for body in indices.values()
    ]
    # Elasticsearch writes to the only index of an alias without the flag, else to the flagged one.
    if True in flags or (len(flags) == 1 and flags[0] is None):
        return "ok"
    return "write alias has no write index"
