"""The SIGTERM handler of deploy/gunicorn.conf.py under gevent, as a gunicorn worker runs it.

A Python signal handler runs in whichever greenlet is running when the signal
lands. Under a reconnect storm that is often one inside ``Relay._lock``
(``read_after``, ``add_stream``, ``remove_waiter``); a handler that took that
lock itself (``begin_shutdown`` -> ``Relay.wake_all``) waited on its own
greenlet forever: no socket was told to restart, every read of the relay
blocked, and gunicorn killed the worker only at its graceful_timeout (the
reconnect storm's old process took 15-17 s to exit instead of ~4.5 s). In the
hub (every greenlet waiting) blocking is not even allowed: gevent raised
``BlockingSwitchOutError`` out of the handler, so gunicorn's own SIGTERM
handling never ran.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from devtools.run import PROJECT_ROOT

# Runs in a fresh interpreter: gevent's monkey-patching must come before anything else,
# as in a gunicorn gevent worker, and a hang must not hang the test run.
_SCRIPT = textwrap.dedent(
    """
    from gevent import monkey

    monkey.patch_all()

    import os
    import runpy
    import signal
    import subprocess
    import sys
    import time

    import gevent
    import redis

    from shared.core.settings import Settings
    from web.realtime.relay import Relay
    from web.realtime.shutdown import on_shutdown, shutting_down

    conf = runpy.run_path("deploy/gunicorn.conf.py")
    conf["post_worker_init"](None)  # installs the SIGTERM handler, as gunicorn does

    relay = Relay(redis.Redis(), Settings.from_env(key_prefix="shutdown-test:"))
    relay._started = True  # no listener: only the shutdown may ring the waiter (no Redis)
    on_shutdown(relay.wake_all)  # what Relay.start registers
    mode = sys.argv[1]

    def busy_socket():
        with relay._lock:  # a socket greenlet inside the relay when SIGTERM lands
            if mode == "greenlet":  # the handler interrupts this very greenlet
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
            else:  # every greenlet waits: the handler runs in the hub
                subprocess.Popen(["kill", "-TERM", str(os.getpid())]).wait()
                gevent.sleep(0.5)
        print("handler returned", flush=True)

    with relay.listening(["stream-a"]) as waiter:
        gevent.spawn(busy_socket).join(5)
        if not waiter.wait(5):
            sys.exit("the waiter was never woken")
        print("woken", shutting_down.is_set(), flush=True)
    """
)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("interrupted", ["hub", "greenlet"])
def test_sigterm_while_the_relay_lock_is_held_wakes_every_socket(interrupted: str) -> None:
    # 15 s: under load a fresh interpreter with gevent and the app imports takes a few seconds.
    try:
        done = subprocess.run(
            [sys.executable, "-c", _SCRIPT, interrupted],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=15,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"SIGTERM handler deadlocked on the relay lock: {exc.stdout!r}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "handler returned" in done.stdout
    assert "woken True" in done.stdout
