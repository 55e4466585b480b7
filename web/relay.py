"""One doorbell listener per web process, waking the connections that wait on a stream.

Each SSE stream and WebSocket waits here instead of holding its own
blocking Redis read, so one process can hold thousands of them on a handful
of Redis connections. A doorbell only says "stream X has news"; the waiter
then reads the log itself. A missed doorbell (Redis hiccup, reconnect) costs
at most one wait interval, never an event: on reconnect every waiter is
woken to re-read.

The same thread keeps this process in the registry of live web instances
(a heartbeat every 30 s; entries older than three beats are removed).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import redis

from shared.keys import RedisKeys
from shared.settings import Settings
from web.shutdown import on_shutdown

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 30
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS


class Waiter:
    """Set when any of the streams it listens to rings."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def ring(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Wait for a ring (True) or the timeout (False); re-arms itself."""
        rang = self._event.wait(timeout)
        self._event.clear()
        return rang


class Relay:
    """Routes doorbells from Redis pub/sub to the waiters of this process."""

    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self.redis = r
        self.keys = RedisKeys(settings.key_prefix)
        self.instance_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self._waiters: dict[str, set[Waiter]] = defaultdict(set)
        self._lock = threading.Lock()
        self._started = False
        self._stopping = threading.Event()

    def start(self) -> None:
        """Start the listener lazily, in the process that serves (after gunicorn's fork)."""
        with self._lock:
            if self._started:
                return
            self._started = True
        on_shutdown(self.wake_all)  # streams notice the shutdown at once, not at their next ping
        threading.Thread(target=self._listen_forever, name="doorbells", daemon=True).start()
        threading.Thread(
            target=self._heartbeat_forever, name="instance-heartbeat", daemon=True
        ).start()

    def stop(self) -> None:
        self._stopping.set()
        self.wake_all()

    @contextmanager
    def listening(self, streams: Iterable[str]) -> Iterator[Waiter]:
        """Register a waiter for ``streams`` *before* reading them, so no ring is lost."""
        self.start()
        waiter = Waiter()
        stream_list = list(streams)
        with self._lock:
            for stream in stream_list:
                self._waiters[stream].add(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                for stream in stream_list:
                    self._waiters[stream].discard(waiter)
                    if not self._waiters[stream]:
                        del self._waiters[stream]

    def add_stream(self, waiter: Waiter, stream: str) -> None:
        """Let an existing waiter also listen to ``stream`` (a socket subscribing later)."""
        with self._lock:
            self._waiters[stream].add(waiter)

    def remove_waiter(self, waiter: Waiter) -> None:
        with self._lock:
            for stream in [s for s, ws in self._waiters.items() if waiter in ws]:
                self._waiters[stream].discard(waiter)
                if not self._waiters[stream]:
                    del self._waiters[stream]

    def wake_all(self) -> None:
        with self._lock:
            waiters = {w for group in self._waiters.values() for w in group}
        for waiter in waiters:
            waiter.ring()

    def _ring(self, stream: str) -> None:
        with self._lock:
            waiters = list(self._waiters.get(stream, ()))
        for waiter in waiters:
            waiter.ring()

    def _listen_forever(self) -> None:
        backoff = 0.1
        while not self._stopping.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.keys.doorbell_channel())
                self.wake_all()  # anything published while we were not listening
                backoff = 0.1
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        self._ring(str(message["data"]))
            except redis.RedisError as exc:
                log.warning("doorbell listener lost Redis (%r); retrying in %.1fs", exc, backoff)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                try:
                    pubsub.close()
                except redis.RedisError:
                    pass

    def _heartbeat_forever(self) -> None:
        key = self.keys.web_instances()
        while not self._stopping.is_set():
            now = time.time()
            try:
                self.redis.zadd(key, {self.instance_id: now})
                self.redis.zremrangebyscore(key, 0, now - STALE_AFTER_SECONDS)
            except redis.RedisError as exc:
                log.warning("instance heartbeat failed: %r", exc)
            self._stopping.wait(HEARTBEAT_SECONDS)
