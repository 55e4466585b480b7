"""Mail tasks: bring a mailbox into the index."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from elasticsearch import ConnectionError as ESConnectionError
from elasticsearch import TransportError

from shared.clients import get_elasticsearch
from shared.importer import import_mbox as import_mbox_file
from shared.settings import get_settings
from shared.task_names import MAIL_IMPORT_MBOX

log = logging.getLogger(__name__)


@shared_task(
    name=MAIL_IMPORT_MBOX,
    autoretry_for=(ESConnectionError, TransportError),
    retry_backoff=True,
    retry_jitter=True,
    max_retries=5,
    time_limit=4 * 3600,
)
def import_mbox(user_id: str, path: str) -> dict[str, Any]:
    """Import an mbox file for ``user_id``.

    Safe to retry or redeliver: documents have deterministic ids, so a second
    run overwrites what the first wrote.
    """
    settings = get_settings()
    stats = import_mbox_file(get_elasticsearch(settings), settings, user_id, path)
    log.info("imported %s for %s: %s", path, user_id, stats.as_dict())
    return stats.as_dict()
