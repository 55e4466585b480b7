"""Per-app services (settings, Redis, Elasticsearch, Celery client), wired once.

Views reach them through ``services()`` instead of globals, so two apps with
different settings (as tests create) never share a connection by accident.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from celery import Celery
from elasticsearch import Elasticsearch
from flask import Flask, current_app

from shared.core.clients import get_elasticsearch, get_redis
from shared.core.settings import Settings
from web.realtime.relay import Relay

EXTENSION_KEY = "mailchat"


@dataclass(frozen=True)
class Services:
    settings: Settings
    redis: redis.Redis
    elasticsearch: Elasticsearch
    celery: Celery
    relay: Relay


def init_services(app: Flask, settings: Settings) -> Services:
    from celery_app import create_celery  # the task-less client: web never imports workers

    found = Services(
        settings=settings,
        redis=get_redis(settings),
        elasticsearch=get_elasticsearch(settings),
        celery=create_celery(settings, with_tasks=False),
        relay=Relay(get_redis(settings), settings),
    )
    app.extensions[EXTENSION_KEY] = found
    return found


def services() -> Services:
    found: Services = current_app.extensions[EXTENSION_KEY]
    return found
