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
