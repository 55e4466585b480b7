"""Redis and Elasticsearch clients built from settings.

Clients are created once per process and reused: both hold connection
pools, and a new pool per request would cost a TCP handshake every time.
"""

from __future__ import annotations

import logging

import redis
from elasticsearch import Elasticsearch

from shared.core.settings import Settings

log = logging.getLogger(__name__)

_redis_clients: dict[str, redis.Redis] = {}
_es_clients: dict[str, Elasticsearch] = {}


def get_redis(settings: Settings) -> redis.Redis:
    """A shared Redis client for ``settings.redis_url`` (responses decoded to str)."""
    if not settings.redis_url:
        raise RuntimeError("MAILCHAT_REDIS_URL is not set (make run and the tests set it)")
    client = _redis_clients.get(settings.redis_url)
    if client is None:
        # A blocking pool: under a burst (a doorbell waking a thousand sockets) callers
        # wait their turn for a connection instead of failing with "Too many connections".
        pool = redis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            timeout=10,
            decode_responses=True,
            socket_connect_timeout=2,
            socket_timeout=10,
        )
        client = redis.Redis(connection_pool=pool)
        _redis_clients[settings.redis_url] = client
    return client


def get_elasticsearch(settings: Settings) -> Elasticsearch:
    """A shared Elasticsearch client for ``settings.elasticsearch_url``."""
    if not settings.elasticsearch_url:
        raise RuntimeError("MAILCHAT_ELASTICSEARCH_URL is not set (make run and the tests set it)")
    client = _es_clients.get(settings.elasticsearch_url)
    if client is None:
        client = Elasticsearch(settings.elasticsearch_url, request_timeout=10, max_retries=2)
        _es_clients[settings.elasticsearch_url] = client
    return client
