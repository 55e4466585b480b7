"""A per-account Gmail API quota budget, enforced in Redis.

Google meters the Gmail API in quota units per method (the "Usage limits"
table: ``messages.get`` 5, ``history.list`` 2, ``watch`` 100, ...) and
limits each mailbox to 15,000 units a minute. Every worker spending on one
account draws from one Redis counter per minute window, so several workers
(a scheduled sync and a push-triggered one, or a retry) can never together
run the mailbox into Google's 429s. A call inside a batch request costs the
same as alone: batching saves round trips, not units.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import redis

from shared.core import metrics
from shared.core.keys import RedisKeys
from shared.core.settings import Settings

log = logging.getLogger(__name__)

# Google's Gmail API quota table (units per call) for the methods Mailchat uses.
METHOD_UNITS = {
    "users.getProfile": 1,
    "users.labels.list": 1,
    "users.history.list": 2,
    "users.messages.list": 5,
    "users.messages.get": 5,
    "users.watch": 100,
    "users.stop": 50,
}
WINDOW_SECONDS = 60
MAX_WAIT_SECONDS = 2 * WINDOW_SECONDS

# KEYS: this window's counter. ARGV: units, limit, ttl.
# Spends only if the window has room (a single call bigger than the whole budget
# is allowed into an empty window, or it could never run). Returns the new total,
# or -1 when the caller must wait for the next window.
_SPEND = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local units = tonumber(ARGV[1])
if used > 0 and used + units > tonumber(ARGV[2]) then
  return -1
end
local total = redis.call('INCRBY', KEYS[1], units)
redis.call('EXPIRE', KEYS[1], ARGV[3])
return total
"""


class QuotaExhausted(Exception):
    """The account's budget will not have room soon enough; try the sync later."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Gmail quota budget exhausted; retry in {retry_after:.0f}s")
        self.retry_after = retry_after


class QuotaBudget:
    """Spend an account's units before each call, waiting for the next window if needed."""

    def __init__(
        self,
        r: redis.Redis,
        settings: Settings,
        account_id: str,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        max_wait: float = MAX_WAIT_SECONDS,
    ) -> None:
        self.redis = r
        self.keys = RedisKeys(settings.key_prefix)
        self.account_id = account_id
        self.limit = settings.gmail_quota_units_per_minute
        self.sleep = sleep
        self.clock = clock
        self.max_wait = max_wait
        self.spent = 0  # units this object spent, for logs and the bench
        self.calls: dict[str, int] = {}
        self._script = r.register_script(_SPEND)

    def spend(self, method: str, calls: int = 1) -> None:
        """Reserve the units for ``calls`` calls of ``method``; blocks until they fit."""
        units = METHOD_UNITS.get(method, 5) * calls
        waited = 0.0
        while True:
            now = self.clock()
            window = int(now // WINDOW_SECONDS)
            key = self.keys.account_quota(self.account_id, window)
            total = int(self._script(keys=[key], args=[units, self.limit, WINDOW_SECONDS * 2]))
            if total >= 0:
                self.spent += units
                self.calls[method] = self.calls.get(method, 0) + calls
                return
            wait = (window + 1) * WINDOW_SECONDS - now + 0.05
            if waited + wait > self.max_wait:
                raise QuotaExhausted(wait)
            metrics.MAIL_SYNC_BACKOFFS.labels(provider="gmail", reason="quota").inc()
            log.info("account %s: Gmail quota budget full, waiting %.1fs", self.account_id, wait)
            self.sleep(wait)
            waited += wait

    def used_this_window(self) -> int:
        window = int(self.clock() // WINDOW_SECONDS)
        value = self.redis.get(self.keys.account_quota(self.account_id, window))
        return int(value) if value else 0
