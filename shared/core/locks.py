"""A Redis lock with a token and an expiry, released only by its holder.

``SET key token NX PX ttl`` takes the lock; the random token proves
ownership, so releasing (and extending) is a Lua compare-and-delete (and
compare-and-expire): a holder whose lock already expired and was taken by
someone else can never delete the new holder's lock. The expiry means a
crashed holder blocks others for at most ``ttl`` seconds.

This is a mutual-exclusion lock for jobs that must not overlap (index
lifecycle, imports), not a fencing mechanism: work that can outlive the
expiry must ``extend()`` between steps and stop when that returns False.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import redis

log = logging.getLogger(__name__)

# KEYS[1]: lock key. ARGV[1]: token. Deletes only if the caller still holds it.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS[1]: lock key. ARGV[1]: token, ARGV[2]: new ttl in ms. Extends only the caller's lock.
_EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""


class LockBusy(RuntimeError):
    """Somebody else holds the lock."""

    def __init__(self, key: str, holder: str | None) -> None:
        super().__init__(f"lock {key} is held by another run" + (f" ({holder})" if holder else ""))
        self.key = key
        self.holder = holder


class RedisLock:
    """One attempt to hold ``key`` for ``ttl_seconds``; never blocks or waits."""

    def __init__(self, r: redis.Redis, key: str, ttl_seconds: float, *, owner: str = "") -> None:
        if ttl_seconds <= 0:
            raise ValueError("a lock needs a positive expiry")
        self.redis = r
        self.key = key
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        # The owner label (e.g. "beat", "cli") only helps an operator read who holds it.
        self.token = f"{owner + ':' if owner else ''}{secrets.token_hex(16)}"
        self._release = r.register_script(_RELEASE)
        self._extend = r.register_script(_EXTEND)

    def acquire(self) -> bool:
        """Take the lock if it is free; True if this instance now holds it."""
        return bool(self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms))

    def release(self) -> bool:
        """Give the lock back; False if it had expired (and maybe been taken) meanwhile."""
        released = bool(self._release(keys=[self.key], args=[self.token]))
        if not released:
            log.warning("lock %s had expired before its holder released it", self.key)
        return released

    def extend(self, ttl_seconds: float | None = None) -> bool:
        """Push the expiry out again; False means the lock is lost and work must stop."""
        ttl_ms = self.ttl_ms if ttl_seconds is None else max(1, int(ttl_seconds * 1000))
        return bool(self._extend(keys=[self.key], args=[self.token, ttl_ms]))

    @contextmanager
    def kept_alive(self) -> Iterator[threading.Event]:
        """Extend the lock every third of its expiry while the block runs (one long request).

        Yields an event that is set if an extension failed, i.e. the lock was
        lost: the caller must check it before acting on what it did meanwhile.
        """
        lost = threading.Event()
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.ttl_ms / 3000):
                if not self.extend():
                    lost.set()
                    return

        thread = threading.Thread(target=renew, name=f"lock-keepalive:{self.key}", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            done.set()
            thread.join()

    def holder(self) -> str | None:
        """The token currently stored (whoever holds it), for messages."""
        value = self.redis.get(self.key)
        return str(value) if value is not None else None


@contextmanager
def hold(r: redis.Redis, key: str, ttl_seconds: float, *, owner: str = "") -> Iterator[RedisLock]:
    """Hold ``key`` for the ``with`` block or raise ``LockBusy`` at once."""
    lock = RedisLock(r, key, ttl_seconds, owner=owner)
    if not lock.acquire():
        raise LockBusy(key, lock.holder())
    try:
        yield lock
    finally:
        lock.release()
