"""A fixed-window request counter per person and endpoint, in Redis.

Small on purpose: one ``INCR`` (plus its expiry) per request, shared by
every web process. The window is aligned to the clock, so the answer to a
refused request can say exactly when the next one is allowed (Retry-After).
Counters carry the person's id in their key and expire two windows later
on their own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import redis

from shared.core.keys import RedisKeys
from shared.core.settings import Settings


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    count: int
    limit: int
    retry_after_seconds: int


def hit(
    r: redis.Redis,
    settings: Settings,
    *,
    scope: str,
    subject: str,
    limit: int,
    window_seconds: int = 60,
    now: float | None = None,
) -> RateDecision:
    """Count one request of ``subject`` against ``scope``; refused beyond ``limit`` per window."""
    current = time.time() if now is None else now
    window = int(current // window_seconds)
    key = RedisKeys(settings.key_prefix).rate_limit(scope, subject, window)
    pipe = r.pipeline()
    pipe.incr(key)
    pipe.expire(key, window_seconds * 2)
    count = int(pipe.execute()[0])
    retry_after = max(1, math.ceil((window + 1) * window_seconds - current))
    return RateDecision(count <= limit, count, limit, retry_after)
