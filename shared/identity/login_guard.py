"""Growing delays after failed logins, per account and per IP address.

A fixed "N per minute" still lets a guesser try N passwords every minute
forever, and a right password right after 50 wrong ones proves nothing good.
So each account and each address gets a few free failures; after those,
every failure makes the next try wait, twice as long as the last (from
``login_delay_base_seconds`` up to ``login_delay_max_seconds``). A try made
while waiting is refused with 429 and ``Retry-After`` *before* any password
is checked (no hashing, so a flood costs the server nothing), even when the
password is right. A success clears the account's failures (not the
address's: one right password must not launder a guessing IP).

Keys carry an HMAC of the email or address, never the email itself, and
expire after ``login_failure_memory_seconds``.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass

import redis

from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.identity.users import normalise_email

# KEYS[1] the failures hash; ARGV: now, free failures, base delay, max delay, memory.
_FAIL = """
local n = redis.call('HINCRBY', KEYS[1], 'count', 1)
local free = tonumber(ARGV[2])
if n > free then
  local delay = math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ (n - free - 1))
  redis.call('HSET', KEYS[1], 'until', tostring(tonumber(ARGV[1]) + delay))
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return n
"""


@dataclass(frozen=True)
class Wait:
    limit: str  # "login_account" or "login_ip" (labels http_rate_limited_total)
    retry_after_seconds: int


def _digest(settings: Settings, value: str) -> str:
    return hmac.new(settings.secret_key.encode(), value.encode(), hashlib.sha256).hexdigest()[:32]


def _keys(settings: Settings, email: str, ip: str) -> list[tuple[str, str, int]]:
    """(limit name, key, free failures) for the account and the address."""
    keys = RedisKeys(settings.key_prefix)
    return [
        (
            "login_account",
            keys.login_failures("account", _digest(settings, normalise_email(email))),
            settings.login_free_failures_per_account,
        ),
        (
            "login_ip",
            keys.login_failures("ip", _digest(settings, ip)),
            settings.login_free_failures_per_ip,
        ),
    ]


def must_wait(
    r: redis.Redis, settings: Settings, email: str, ip: str, now: float | None = None
) -> Wait | None:
    """The wait imposed on this account or address, if any (the longer of the two)."""
    current = time.time() if now is None else now
    pipe = r.pipeline(transaction=False)
    named = _keys(settings, email, ip)
    for _name, key, _free in named:
        pipe.hget(key, "until")
    waits = [
        Wait(name, math.ceil(float(until) - current))
        for (name, _key, _free), until in zip(named, pipe.execute(), strict=True)
        if until is not None and float(until) > current
    ]
    return max(waits, key=lambda w: w.retry_after_seconds) if waits else None


def record_failure(
    r: redis.Redis, settings: Settings, email: str, ip: str, now: float | None = None
) -> None:
    current = time.time() if now is None else now
    for _name, key, free in _keys(settings, email, ip):
        r.eval(
            _FAIL,
            1,
            key,
            current,
            free,
            settings.login_delay_base_seconds,
            settings.login_delay_max_seconds,
            settings.login_failure_memory_seconds,
        )


def record_success(r: redis.Redis, settings: Settings, email: str) -> None:
    r.delete(_keys(settings, email, "")[0][1])
