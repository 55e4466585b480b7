"""Rate limits on Redis, with the ``limits`` package (the one Flask-Limiter is built on).

HTTP endpoints are limited by Flask-Limiter in ``web.ratelimits``; what a
decorator cannot reach goes through ``RateLimits.spend`` here: a question,
which costs the same whether it came by POST, SSE or WebSocket; a WebSocket
frame; upload bytes (the cost is the byte count). Both use the same Redis
storage and key prefix, so every counter is shared by every web process and
expires on its own.

``limit`` names are a fixed vocabulary (``LIMIT_NAMES``): they label
``http_rate_limited_total`` for the dashboard's 429 panel.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import redis
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from shared.core import metrics
from shared.core.clients import get_redis
from shared.core.keys import RedisKeys
from shared.core.settings import Settings

LIMIT_NAMES = frozenset(
    {
        "login_ip",
        "login_account",
        "auth",
        "ask",
        "ws_frames",
        "ws_sockets",
        "sync",
        "upload",
        "upload_bytes",
        "ux",
    }
)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after_seconds: int


def refused(limit: str) -> None:
    """Count one refusal of ``limit`` (the 429 panel)."""
    metrics.HTTP_RATE_LIMITED.labels(limit=limit if limit in LIMIT_NAMES else "other").inc()


def storage_options(settings: Settings) -> dict[str, str]:
    """What Flask-Limiter needs to keep its counters beside ours."""
    return {"key_prefix": RedisKeys(settings.key_prefix).rate_limit_prefix()}


@lru_cache(maxsize=32)
def parsed(limit_string: str) -> tuple[RateLimitItem, ...]:
    return tuple(parse_many(limit_string))


class RateLimits:
    """Spend against named limits; one per process and settings (``for_settings``)."""

    def __init__(self, settings: Settings) -> None:
        # A blocking pool, like the shared client's: a burst (a thousand sockets resuming at
        # once) waits for a connection; redis-py's default pool raises beyond 100 instead,
        # which closed sockets with "server unavailable".
        pool = redis.BlockingConnectionPool.from_url(
            settings.redis_url,
            max_connections=settings.redis_max_connections,
            timeout=10,
            socket_connect_timeout=2,
            socket_timeout=10,
        )
        self.storage = RedisStorage(
            settings.redis_url,
            connection_pool=pool,
            key_prefix=RedisKeys(settings.key_prefix).rate_limit_prefix(),
        )
        self.limiter = FixedWindowRateLimiter(self.storage)

    def spend(self, name: str, limit_string: str, subject: str, cost: int = 1) -> Decision:
        """Spend ``cost`` of ``subject`` against every window of ``limit_string``.

        Refused (and counted) when any window would go over; a refused spend
        costs nothing. ``retry_after_seconds`` is when the fullest window resets.
        """
        items = parsed(limit_string)
        for item in items:
            if not self.limiter.test(item, name, subject, cost=cost):
                reset_at = self.limiter.get_window_stats(item, name, subject).reset_time
                refused(name)
                return Decision(False, max(1, round(reset_at - time.time())))  # now + whole TTL
        for item in items:
            self.limiter.hit(item, name, subject, cost=cost)
        return Decision(True, 0)


@lru_cache(maxsize=8)
def for_settings(settings: Settings) -> RateLimits:
    return RateLimits(settings)


# KEYS[1] the user's sockets; ARGV: socket id, now, lapse at, max sockets. 1 = claimed.
_CLAIM_SOCKET = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[2])
if redis.call('ZSCORE', KEYS[1], ARGV[1]) == false
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('EXPIREAT', KEYS[1], math.ceil(tonumber(ARGV[3])))
return 1
"""


class SocketSlots:
    """Open WebSockets per person, across every web process.

    A socket claims a slot (a sorted-set member scored by when the claim
    lapses) and renews it while open; a process that dies without releasing
    leaves claims that lapse on their own after ``lapse_seconds``. It keeps no
    state of its own: one serves every socket of a process (``socket_slots``).
    """

    __slots__ = ("r", "settings", "lapse", "keys")

    def __init__(self, r: redis.Redis, settings: Settings, lapse_seconds: float) -> None:
        self.r, self.settings, self.lapse = r, settings, lapse_seconds
        self.keys = RedisKeys(settings.key_prefix)

    def claim(self, user_id: str, socket_id: str) -> bool:
        """Claim (or renew) a slot; False (counted) when the person holds the maximum."""
        now = time.time()
        claimed = self.r.eval(
            _CLAIM_SOCKET,
            1,
            self.keys.user_sockets(user_id),
            socket_id,
            now,
            now + self.lapse,
            self.settings.ws_max_sockets_per_user,
        )
        if not int(claimed):
            refused("ws_sockets")
        return bool(int(claimed))

    def release(self, user_id: str, socket_id: str) -> None:
        self.r.zrem(self.keys.user_sockets(user_id), socket_id)


@lru_cache(maxsize=8)
def socket_slots(settings: Settings, lapse_seconds: float) -> SocketSlots:
    """The process's ``SocketSlots`` for ``settings`` (a socket pays for none of its own)."""
    return SocketSlots(get_redis(settings), settings, lapse_seconds)
