"""Deliver an event to a person: append it to their log, exactly once.

Delivery is never "push to a socket"; it is "append to the log", and the
sockets read the log. The ``delivery.deliver`` task wraps ``deliver`` with
retries; the dedup key makes every retry and redelivery harmless.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import redis

from shared.eventlog import Appended, EventLog
from shared.keys import RedisKeys
from shared.settings import Settings

log = logging.getLogger(__name__)

Target = Literal["conversation", "user"]
DEAD_LETTER_MAXLEN = 10_000


def deliver(
    r: redis.Redis,
    settings: Settings,
    *,
    target: Target,
    target_id: str,
    event_type: str,
    data: dict[str, Any],
    dedup_key: str,
) -> Appended:
    """Append ``event_type`` to the conversation's or the user's log (idempotent on dedup_key)."""
    events = EventLog(r, settings)
    if target == "conversation":
        stream, conversation_id = events.conversation_stream(target_id), target_id
    elif target == "user":
        stream, conversation_id = events.user_stream(target_id), ""
    else:
        raise ValueError(f"unknown delivery target {target!r}")
    return events.append(
        stream, event_type, data, dedup_key=dedup_key, conversation_id=conversation_id
    )


def dead_letter(r: redis.Redis, settings: Settings, payload: dict[str, Any], reason: str) -> str:
    """Park a delivery that ran out of retries, with why, for an operator to replay."""
    import json

    stream = RedisKeys(settings.key_prefix).dead_letters()
    entry = r.xadd(
        stream,
        {"payload": json.dumps(payload, ensure_ascii=False), "reason": reason[:500]},
        maxlen=DEAD_LETTER_MAXLEN,
        approximate=True,
    )
    log.error("delivery dead-lettered (%s): %s", reason[:200], payload.get("dedup_key"))
    return str(entry)
