"""This process's "going away" flag.

gunicorn's SIGTERM sets it (see deploy/gunicorn.conf.py): ``/readyz`` turns
503 so load balancers stop sending new clients, open sockets are told to
reconnect elsewhere (close 1012) and SSE streams end with a ``reconnect``
event, while requests in flight finish.
"""

from __future__ import annotations

import _thread
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


def begin_shutdown_from_signal() -> None:
    """``begin_shutdown`` for a signal handler: started in a thread of its own, never inline.

    Under gevent a handler runs in whatever greenlet the signal interrupted, or in
    the hub itself, where nothing may block. The callbacks take the relay's lock
    (``Relay.wake_all``): when a socket greenlet held it (a reconnect storm keeps it
    busy), the hub raised ``BlockingSwitchOutError`` out of the handler (gunicorn's
    own SIGTERM handling never ran, the worker died or sockets waited for the
    graceful_timeout kill), and an interrupted lock holder waited on itself forever.
    ``_thread.start_new_thread`` returns at once (gevent patches it to a spawn, as
    gunicorn does with its own handlers, gunicorn#1126); ``Thread.start`` would wait.
    """
    _thread.start_new_thread(begin_shutdown, ())
