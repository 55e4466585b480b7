"""Password hashing off the event loop.

argon2id is deliberately slow (tens of milliseconds of CPU and 64 MiB per
hash). In a gevent web worker, a hash on the loop stalls every greenlet of
the process for that long: 16 parallel logins once took ``/healthz`` from
2 ms to 2.6 s. So under gevent the hash runs on gevent's thread pool
(``password_hash_threads`` threads; argon2's C code releases the GIL, and
the calling greenlet yields while it waits). The hashing threads also run
at a lower CPU priority (nice ``HASH_NICENESS``), so on a busy machine the
loop's thread wins the CPU and a login flood queues logins, not every other
request. Outside gevent (CLI, Celery, tests with Flask's client) there is no
loop to protect and it runs inline.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.core.settings import Settings

T = TypeVar("T")

_hasher = PasswordHasher()
# Verifying against this when the email is unknown keeps login timing the same
# for existing and missing accounts.
DUMMY_HASH = _hasher.hash(secrets.token_hex(16))

HASH_NICENESS = 10

_pool_lock = threading.Lock()
_pools: dict[int, Any] = {}


def _gevent_loop_running() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a dependency
        return False
    return bool(monkey.is_module_patched("threading"))


def _pool(size: int) -> Any:
    with _pool_lock:
        pool = _pools.get(size)
        if pool is None:
            from gevent.threadpool import ThreadPool

            pool = _pools[size] = ThreadPool(size)
        return pool


def _yielding(func: Callable[..., T], *args: Any) -> T:
    """Run ``func`` on a pool thread that first lowers its own CPU priority (Linux: per thread;
    argon2's lane threads inherit it)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICENESS)
    except (AttributeError, OSError):  # not Linux, or not allowed: run at normal priority
        pass
    return func(*args)


def off_loop(settings: Settings, func: Callable[..., T], *args: Any) -> T:
    """``func(*args)`` on the hashing thread pool under gevent, else inline."""
    if settings.password_hash_threads <= 0 or not _gevent_loop_running():
        return func(*args)
    result: T = _pool(settings.password_hash_threads).apply(_yielding, (func, *args))
    return result


def hash_password(settings: Settings, password: str) -> str:
    return off_loop(settings, _hasher.hash, password)


def verify_password(settings: Settings, stored_hash: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored_hash``; None costs the same work and is False."""

    def check() -> bool:
        try:
            return bool(_hasher.verify(stored_hash or DUMMY_HASH, password))
        except (VerificationError, InvalidHashError):
            return False

    return off_loop(settings, check) and stored_hash is not None
