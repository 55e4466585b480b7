"""Deliver an event to a person: append it to their log, exactly once.

Delivery is never "push to a socket"; it is "append to the log", and the
sockets read the log. The ``delivery.deliver`` task wraps ``deliver`` with
retries; the dedup key makes every retry and redelivery harmless.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any, Literal

import redis

from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.core.task_names import DELIVERY_DELIVER, SendTask
from shared.realtime.eventlog import Appended, EventLog

log = logging.getLogger(__name__)

Target = Literal["conversation", "user"]
DEAD_LETTER_MAXLEN = 10_000


@dataclasses.dataclass(frozen=True)
class Delivery:
    """One event addressed to a person: what the outbox stores and ``delivery.deliver`` takes.

    Its fields are the task's keyword arguments (a wire format: queued messages carry them).
    """

    target: Target
    target_id: str
    event_type: str
    data: dict[str, Any]
    dedup_key: str
    enqueued_at: float | None = None

    def as_kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_kwargs(cls, kwargs: dict[str, Any]) -> Delivery:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in kwargs.items() if k in names})


def enqueue_delivery(
    send_task: SendTask, r: redis.Redis, settings: Settings, delivery: Delivery
) -> None:
    """Send ``delivery.deliver``: the one way tasks address a person (sync notifications...).

    The delivery is written to the outbox first, so even a task the broker loses is
    re-sent by the sweep.
    """
    now = time.time()
    stamped = dataclasses.replace(delivery, enqueued_at=now)
    record_pending(r, settings, stamped, now)
    send_task(DELIVERY_DELIVER, kwargs=stamped.as_kwargs())


def deliver(r: redis.Redis, settings: Settings, delivery: Delivery) -> Appended:
    """Append the event to the conversation's or the user's log (idempotent on its dedup key)."""
    events = EventLog(r, settings)
    if delivery.target == "conversation":
        stream, conversation_id = events.conversation_stream(delivery.target_id), delivery.target_id
    elif delivery.target == "user":
        stream, conversation_id = events.user_stream(delivery.target_id), ""
    else:
        raise ValueError(f"unknown delivery target {delivery.target!r}")
    return events.append(
        stream,
        delivery.event_type,
        delivery.data,
        dedup_key=delivery.dedup_key,
        conversation_id=conversation_id,
    )


def dead_letter(r: redis.Redis, settings: Settings, delivery: Delivery, reason: str) -> str:
    """Park a delivery that ran out of retries, with why, for an operator to replay."""
    stream = RedisKeys(settings.key_prefix).dead_letters()
    entry = r.xadd(
        stream,
        {"payload": json.dumps(delivery.as_kwargs(), ensure_ascii=False), "reason": reason[:500]},
        maxlen=DEAD_LETTER_MAXLEN,
        approximate=True,
    )
    log.error("delivery dead-lettered (%s): %s", reason[:200], delivery.dedup_key)
    return str(entry)


# --- The outbox: at-least-once enqueueing -----------------------------------------------
#
# The Redis broker hands a task to a worker with BRPOP and only then records it as
# unacknowledged; a worker killed between the two loses the task. So a delivery is
# first written to an outbox, settled only once its event is in the log, and a
# periodic sweep re-sends anything left unsettled. The dedup key makes a re-send
# of a delivery that did land harmless.
#
# The sweep cannot tell a lost task from one still waiting in a long queue, so each
# re-send of the same delivery waits twice as long as the one before (the grace
# period, then 2x, 4x ... up to an hour). With a fixed interval, a backlog older
# than the grace period was re-sent in full every interval: the queue grew faster
# than workers drained it and never emptied (make chaos, workers_killed: 7,334 tasks
# queued for 1,000 deliveries, some undelivered after 90 s).

RESEND_BACKOFF_MAX_SECONDS = 3600.0


def record_pending(r: redis.Redis, settings: Settings, delivery: Delivery, now: float) -> None:
    """Remember a delivery before it is enqueued."""
    keys = RedisKeys(settings.key_prefix)
    dedup_key = delivery.dedup_key
    pipe = r.pipeline(transaction=True)
    pipe.hset(
        keys.delivery_outbox(), dedup_key, json.dumps(delivery.as_kwargs(), ensure_ascii=False)
    )
    pipe.zadd(keys.delivery_outbox_due(), {dedup_key: now})
    pipe.execute()


def settle(r: redis.Redis, settings: Settings, dedup_key: str) -> None:
    """The delivery landed (or was dead-lettered): stop re-sending it."""
    keys = RedisKeys(settings.key_prefix)
    pipe = r.pipeline(transaction=True)
    pipe.hdel(keys.delivery_outbox(), dedup_key)
    pipe.zrem(keys.delivery_outbox_due(), dedup_key)
    pipe.hdel(keys.delivery_outbox_resends(), dedup_key)
    pipe.execute()


def resend_delay(settings: Settings, resends: int) -> float:
    """How long after its ``resends``-th re-send a still unsettled delivery is due again."""
    grace = settings.delivery_redeliver_after_seconds
    return float(min(grace * 2 ** min(resends, 32), max(grace, RESEND_BACKOFF_MAX_SECONDS)))


def claim_overdue(
    r: redis.Redis, settings: Settings, now: float, limit: int = 500
) -> list[Delivery]:
    """Deliveries overdue (pending past the grace period, or past their backoff after a
    re-send), re-dated so one sweep claims each, and later each time it is claimed again."""
    keys = RedisKeys(settings.key_prefix)
    grace = settings.delivery_redeliver_after_seconds
    cutoff = now - grace
    overdue = [str(k) for k in r.zrangebyscore(keys.delivery_outbox_due(), 0, cutoff, 0, limit)]
    claimed = []
    for dedup_key in overdue:
        resends = int(r.hget(keys.delivery_outbox_resends(), dedup_key) or 0)
        # The score is "sent at": due again once it is ``grace`` old, so a backoff of d
        # dates it d - grace into the future.
        score = now + resend_delay(settings, resends) - grace
        # Only the sweep that moves the score forward claims it (XX: still pending; GT: later).
        if r.zadd(keys.delivery_outbox_due(), {dedup_key: score}, xx=True, gt=True, ch=True):
            r.hincrby(keys.delivery_outbox_resends(), dedup_key, 1)
            raw = r.hget(keys.delivery_outbox(), dedup_key)
            if raw:
                claimed.append(Delivery.from_kwargs(json.loads(raw)))
    return claimed


def is_pending(r: redis.Redis, settings: Settings, dedup_key: str) -> bool:
    """Whether the outbox still holds this delivery (neither settled nor purged)."""
    return bool(r.hexists(RedisKeys(settings.key_prefix).delivery_outbox(), dedup_key))


def purge_outbox(r: redis.Redis, settings: Settings, target_ids: set[str]) -> int:
    """Drop every pending delivery addressed to one of ``target_ids``; returns how many.

    Delete-my-data calls this before it deletes the logs: otherwise the sweep
    would re-send a pending notification and recreate the log it just deleted.
    A task already queued for a purged delivery finds its entry gone and
    writes nothing (``delivery.deliver`` checks ``is_pending``).
    """
    keys = RedisKeys(settings.key_prefix)
    doomed: list[str] = []
    for dedup_key, raw in r.hscan_iter(keys.delivery_outbox(), count=500):
        try:
            target_id = str(json.loads(raw).get("target_id", ""))
        except ValueError:
            continue
        if target_id in target_ids:
            doomed.append(str(dedup_key))
    for start in range(0, len(doomed), 500):
        chunk = doomed[start : start + 500]
        pipe = r.pipeline(transaction=True)
        pipe.hdel(keys.delivery_outbox(), *chunk)
        pipe.zrem(keys.delivery_outbox_due(), *chunk)
        pipe.hdel(keys.delivery_outbox_resends(), *chunk)
        pipe.execute()
    return len(doomed)
