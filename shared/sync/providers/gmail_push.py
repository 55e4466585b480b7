"""Gmail push: keeping ``users.watch`` alive, and turning Pub/Sub pushes into syncs.

Google publishes a notification to the configured Pub/Sub topic when a
watched mailbox changes, and drops the watch after 7 days unless it is
renewed; beat renews every watch daily. A push carries only the address
and the mailbox's new historyId; it enqueues a sync, nothing more. A
redelivered push (same Pub/Sub message id) and a push about a historyId
the account has already synced past are no-ops.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.sync import accounts
from shared.sync.accounts import NEEDS_REAUTH, Account
from shared.sync.providers.base import NeedsReauth
from shared.sync.providers.gmail import CURSOR_FIELD
from shared.sync.schedule import request_sync

log = logging.getLogger(__name__)

PUSH_DEDUP_SECONDS = 7 * 24 * 3600  # Pub/Sub's longest retention: a redelivery is never new
WATCH_MARGIN_SECONDS = 2 * 24 * 3600


class PushError(ValueError):
    """The push body is not a Gmail notification."""


@dataclass(frozen=True)
class PushNotice:
    address: str
    history_id: int
    message_id: str


def decode_push(body: Any) -> PushNotice:
    """Read a Pub/Sub push envelope: ``{"message": {"data": base64 JSON, "messageId"}}``."""
    message = body.get("message") if isinstance(body, dict) else None
    if not isinstance(message, dict) or not isinstance(message.get("data"), str):
        raise PushError("expected a Pub/Sub push: {'message': {'data': ..., 'messageId': ...}}")
    try:
        data = json.loads(base64.b64decode(message["data"], altchars=b"-_", validate=False))
        address = str(data["emailAddress"]).strip().lower()
        history_id = int(data["historyId"])
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise PushError(
            "message.data is not a Gmail notification (emailAddress, historyId)"
        ) from exc
    message_id = str(message.get("messageId") or message.get("message_id") or "")
    if not message_id:
        raise PushError("message.messageId is missing")
    return PushNotice(address, history_id, message_id)


def _synced_history_id(r: redis.Redis, settings: Settings, account_id: str) -> int | None:
    stored = accounts.cursor(r, settings, account_id).get(CURSOR_FIELD)
    state = json.loads(stored) if stored else {}
    if "history_id" in state and "full" not in state:
        return int(state["history_id"])
    return None


def handle_push(
    r: redis.Redis, settings: Settings, notice: PushNotice, send_task: Callable[..., Any]
) -> list[str]:
    """Queue a sync for every account of the address that has not seen this change."""
    keys = RedisKeys(settings.key_prefix)
    queued = []
    for account_id in accounts.gmail_accounts_for_address(r, settings, notice.address):
        seen_key = keys.account_push_seen(account_id, notice.message_id)
        if not r.set(seen_key, "1", nx=True, ex=PUSH_DEDUP_SECONDS):
            continue  # Pub/Sub redelivered a push we already acted on
        account = accounts.get_account(r, settings, account_id)
        if account is None or account.state == NEEDS_REAUTH:
            continue
        synced = _synced_history_id(r, settings, account_id)
        if synced is not None and notice.history_id <= synced:
            continue  # that change is already in the index
        if request_sync(r, settings, send_task, account_id):
            queued.append(account_id)
    return queued


def renew_watch(r: redis.Redis, settings: Settings, account: Account, api: Any) -> float:
    """(Re)start the watch on one mailbox; returns when Google will drop it (unix seconds)."""
    body = {
        "topicName": settings.gmail_pubsub_topic,
        "labelIds": ["SPAM", "TRASH"],
        "labelFilterBehavior": "exclude",
    }
    response = api.call("users.watch", api.users.watch(userId="me", body=body))
    expires = int(response["expiration"]) / 1000
    accounts.update(r, settings, account.id, watch_expires_at=expires)
    return expires


def ensure_watch(
    r: redis.Redis, settings: Settings, account: Account, client_for: Callable[[Account], Any]
) -> bool:
    """Start a watch right after a sync if push is on and the account has none (or it is
    about to lapse), instead of waiting up to a day for the scheduled renewal."""
    if not settings.gmail_pubsub_topic or account.provider != "gmail":
        return False
    if account.watch_expires_at and account.watch_expires_at > time.time() + WATCH_MARGIN_SECONDS:
        return False
    renew_watch(r, settings, account, client_for(account))
    return True


def renew_watches(
    r: redis.Redis, settings: Settings, client_for: Callable[[Account], Any]
) -> dict[str, int]:
    """Renew every Gmail account's watch; a revoked token marks that account needs_reauth."""
    counts = {"renewed": 0, "needs_reauth": 0, "failed": 0, "skipped": 0}
    if not settings.gmail_pubsub_topic:
        return counts
    for account_id in accounts.all_account_ids(r, settings):
        account = accounts.get_account(r, settings, account_id)
        if account is None or account.provider != "gmail" or account.state == NEEDS_REAUTH:
            counts["skipped"] += 1
            continue
        try:
            renew_watch(r, settings, account, client_for(account))
            counts["renewed"] += 1
        except NeedsReauth as exc:
            accounts.update(r, settings, account_id, state=NEEDS_REAUTH, last_error=str(exc))
            counts["needs_reauth"] += 1
        except Exception:  # one mailbox's failure must not stop the others' renewal
            log.exception("account %s: Gmail watch renewal failed", account_id)
            counts["failed"] += 1
    return counts
