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
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import redis

from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.realtime.eventlog import READ_PAGE, Event, EventLog, entry_key, position_before
from web.realtime.shutdown import on_shutdown

log = logging.getLogger(__name__)

TAIL_EVENTS = 256
OUTAGE_AFTER_FAILURES = 3
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


class _Tail:
    """The newest events of one stream, shared by every waiter of this process.

    A doorbell bumps ``generation``; the first reader after it fetches the new
    entries once, and the other waiters are served from memory. A thousand
    sockets on one stream cost one XRANGE per event instead of a thousand.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[Event] = []
        self.keys: list[tuple[int, int]] = []  # entry_key of each event, for bisecting
        self.generation = 0
        self.fetched_generation = -1

    def extend(self, events: list[Event]) -> None:
        self.events.extend(events)
        self.keys.extend(entry_key(event.id) for event in events)
        if len(self.events) > TAIL_EVENTS:
            del self.events[:-TAIL_EVENTS], self.keys[:-TAIL_EVENTS]

    def after(self, position: str) -> list[Event] | None:
        """The events after ``position``, or None when the tail does not reach back that far."""
        if not self.events or entry_key(position) < entry_key(position_before(self.events[0].id)):
            return None
        return self.events[bisect_right(self.keys, entry_key(position)) :]


class Relay:
    """Routes doorbells from Redis pub/sub to the waiters of this process."""

    def __init__(self, r: redis.Redis, settings: Settings) -> None:
        self.redis = r
        self.keys = RedisKeys(settings.key_prefix)
        self.events = EventLog(r, settings)
        self._tails: dict[str, _Tail] = {}
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
                        self._tails.pop(stream, None)

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
                    self._tails.pop(stream, None)

    def wake_all(self) -> None:
        with self._lock:
            for tail in self._tails.values():
                tail.generation += 1  # a missed doorbell may hide behind any of them
            waiters = {w for group in self._waiters.values() for w in group}
        for waiter in waiters:
            waiter.ring()

    def read_after(self, stream: str, after: str) -> list[Event]:
        """Up to one page of ``stream``'s events after ``after``, from the shared tail when it
        covers them. An empty list means the reader is at the end of the stream; a full
        page means "read again now" (callers loop until empty before they wait)."""
        with self._lock:
            tail = self._tails.get(stream) if stream in self._waiters else None
            if tail is None and stream in self._waiters:
                tail = self._tails[stream] = _Tail()
        if tail is None:
            return self.events.read(stream, after=after).events
        with tail.lock:
            if tail.fetched_generation != tail.generation or not tail.events:
                generation = tail.generation  # a ring during the fetch forces another one
                start = tail.events[-1].id if tail.events else after
                page = self.events.read(stream, after=start, count=READ_PAGE).events
                tail.extend(page)
                # A full page may not reach the end of the stream: until a short page
                # proves the tail is current, every read fetches again (no doorbell
                # will ring for events that were already there).
                tail.fetched_generation = generation if len(page) < READ_PAGE else -1
            cached = tail.after(after)
        if cached is not None:
            return cached
        return self.events.read(stream, after=after, count=READ_PAGE).events

    def _ring(self, stream: str) -> None:
        with self._lock:
            tail = self._tails.get(stream)
            if tail is not None:
                tail.generation += 1
            waiters = list(self._waiters.get(stream, ()))
        for waiter in waiters:
            waiter.ring()

    def _listen_forever(self) -> None:
        backoff = 0.1
        failures = 0
        while not self._stopping.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.keys.doorbell_channel())
                self.wake_all()  # anything published while we were not listening
                backoff, failures = 0.1, 0
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        self._ring(str(message["data"]))
            except redis.RedisError as exc:
                # A blip is routine (waiters re-read on reconnect); an outage is worth a warning.
                failures += 1
                level = logging.WARNING if failures >= OUTAGE_AFTER_FAILURES else logging.DEBUG
                log.log(level, "doorbell listener lost Redis (%r); retry in %.1fs", exc, backoff)
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
