"""This process's "going away" flag.

gunicorn's SIGTERM sets it (see deploy/gunicorn.conf.py): ``/readyz`` turns
503 so load balancers stop sending new clients, open sockets are told to
reconnect elsewhere (close 1012) and SSE streams end with a ``reconnect``
event, while requests in flight finish.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

shutting_down = threading.Event()
_callbacks: list[Callable[[], None]] = []


def on_shutdown(callback: Callable[[], None]) -> None:
    """Run ``callback`` when shutdown begins (the relay wakes its waiters with it)."""
    _callbacks.append(callback)


def begin_shutdown() -> None:
    shutting_down.set()
    for callback in list(_callbacks):
        callback()


def begin_shutdown_from_signal() -> threading.Thread:
    """``begin_shutdown`` for a signal handler: in a thread of its own, never in the handler.

    A handler runs in whatever greenlet (or thread) the signal interrupted, often
    one inside the relay's lock; the callbacks take that lock (``Relay.wake_all``),
    so run inline they waited on their own greenlet forever: no socket heard
    "restart", every relay read blocked behind the lock, and gunicorn killed the
    worker only at its graceful_timeout. gunicorn moves its own gevent handlers
    out of signal context for the same reason (gunicorn#1126).
    """
    thread = threading.Thread(target=begin_shutdown, name="begin-shutdown", daemon=True)
    thread.start()
    return thread
