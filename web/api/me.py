"""``DELETE /api/me/data``: remove everything Mailchat holds about the caller.

Mail documents in every index, conversations and their event logs, the
notification log, connected mail accounts with their cursors, and every
access token issued so far (the login itself stays, so the person can come
back). Answers the counts removed. The work is ``shared.privacy.delete_data``; it runs
in the request because the person is owed an answer saying it is done.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from elasticsearch import ConnectionError as ESConnectionError
from elasticsearch import TransportError
from flask import Blueprint, jsonify

from shared.core.logs import user_hash
from shared.privacy.delete_data import delete_user_data
from web.api.auth import current_user
from web.errors import ApiError
from web.extensions import services

log = logging.getLogger(__name__)

bp = Blueprint("me", __name__, url_prefix="/api/me")

RETRY_AFTER_SECONDS = 30


@bp.delete("/data")
def delete_my_data() -> Any:
    svc = services()
    user = current_user()
    try:
        report = delete_user_data(svc.elasticsearch, svc.redis, svc.settings, user.id)
    except (ESConnectionError, TransportError, redis.RedisError, RuntimeError) as exc:
        # Tokens are revoked last, so the same token can retry what is left.
        log.error("delete-my-data for %s stopped: %r", user_hash(user.id), exc)
        raise ApiError(
            503,
            "deletion_incomplete",
            "Not everything could be deleted yet; nothing is lost by retrying the same request.",
            retry_after=RETRY_AFTER_SECONDS,
        ) from exc
    return jsonify(
        {
            "deleted": report.as_dict(),
            "message": "Your mail, conversations, logs and mail accounts are deleted; "
            "every access token is revoked. Log in again to start afresh.",
        }
    )
