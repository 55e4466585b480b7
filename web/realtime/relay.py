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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import redis

from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.realtime.eventlog import READ_PAGE, Event, EventLog, entry_key
from web.realtime.shutdown import on_shutdown

log = logging.getLogger(__name__)

TAIL_EVENTS = 256
OUTAGE_AFTER_FAILURES = 3
HEARTBEAT_SECONDS = 30
STALE_AFTER_SECONDS = 3 * HEARTBEAT_SECONDS


class Waiter:
    """Set when any of the streams it listens to rings.

    ``event`` may be one the caller already waits on (a WebSocket's own
    "frame arrived" event), so a single greenlet wakes for frames and
    doorbells alike instead of one greenlet waiting on each. ``deliver``,
    when given, is offered a rung stream first, from the listener: it returns
    True when it sent the news itself, and the waiter is not woken at all.
    """

    __slots__ = ("_event", "deliver")

    def __init__(
        self,
        event: threading.Event | None = None,
        deliver: Callable[[str], bool] | None = None,
    ) -> None:
        self._event = event if event is not None else threading.Event()
        self.deliver = deliver

    def ring(self) -> None:
        self._event.set()

    def wait(self, timeout: float) -> bool:
        """Wait for a ring (True) or the timeout (False); re-arms itself."""
        rang = self._event.wait(timeout)
        self._event.clear()
        return rang


class _Tail:
    """The newest events of one stream, shared by every waiter of this process.

    ``events`` holds every entry after ``covers_after`` as of the read at
    ``fetched_generation``. A doorbell bumps ``generation``; the first reader
    after it fetches the new entries once, and the other waiters are served
    from memory. A thousand sockets on one stream cost one XRANGE per event
    instead of a thousand, and an idle stream costs none: "empty at
    generation g" is remembered like any other answer, so an idle socket
    re-reading its cursor never reaches Redis until a doorbell rings.
    """

    __slots__ = (
        "lock",
        "events",
        "keys",
        "generation",
        "fetched_generation",
        "covers_after",
        "prefetching",
    )

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.prefetching = False  # the listener is fetching; a ring follows when it is done
        self.events: list[Event] = []
        self.keys: list[tuple[int, int]] = []  # entry_key of each event, for bisecting
        self.generation = 0
        self.fetched_generation = -1
        self.covers_after: tuple[int, int] | None = None  # None: nothing fetched yet

    def extend(self, events: list[Event]) -> None:
        self.events.extend(events)
        self.keys.extend(entry_key(event.id) for event in events)
        if len(self.events) > TAIL_EVENTS:
            self.covers_after = self.keys[-TAIL_EVENTS - 1]  # the last one dropped
            del self.events[:-TAIL_EVENTS], self.keys[:-TAIL_EVENTS]

    def prepend(self, position: tuple[int, int], events: list[Event]) -> bool:
        """Reach back to ``position`` with ``events`` (every entry up to the old start).

        False (nothing changed) when the tail would outgrow its size: a reader
        that far behind reads Redis itself until it has caught up.
        """
        if len(self.events) + len(events) > TAIL_EVENTS:
            return False
        self.events[:0] = events
        self.keys[:0] = [entry_key(event.id) for event in events]
        self.covers_after = position
        return True

    def after(self, position: tuple[int, int]) -> list[Event] | None:
        """The events after ``position``, or None when the tail does not reach back that far."""
        if self.covers_after is None or position < self.covers_after:
            return None
        return self.events[bisect_right(self.keys, position) :]


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
        # Set while the listener is subscribed (and has woken everyone once since): from
        # then on no doorbell is missed. Tests wait on it; a reader needs not.
        self.subscribed = threading.Event()

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
        page means "read again now" (callers loop until empty before they wait).

        Reads Redis only when a doorbell rang since the tail's last fetch (or the tail
        does not reach back to ``after``): an idle reader is served from memory."""
        with self._lock:
            tail = self._tails.get(stream) if stream in self._waiters else None
            if tail is None and stream in self._waiters:
                tail = self._tails[stream] = _Tail()
        if tail is None:
            return self.events.range_after(stream, after)
        position = entry_key(after or "0")
        with tail.lock:
            if not tail.prefetching:  # else what is cached will do: a ring follows the fetch
                self._fetch_if_stale(tail, stream, after)
            cached = tail.after(position)
            if cached is None and tail.covers_after is not None:
                # Behind the tail's start: fetch the gap once; if it is short, the tail
                # reaches back to this reader from now on (no Redis read per idle wake).
                gap = self.events.range_after(stream, after, count=READ_PAGE)
                gap = [event for event in gap if entry_key(event.id) <= tail.covers_after]
                if len(gap) < READ_PAGE and tail.prepend(position, gap):
                    cached = tail.after(position)
        if cached is not None:
            return cached
        return self.events.range_after(stream, after)

    def _fetch_if_stale(self, tail: _Tail, stream: str, after: str) -> None:
        """Bring the tail up to date if a doorbell rang since its last fetch (or it has
        none yet: then it starts at ``after``). The caller holds ``tail.lock``."""
        if tail.covers_after is not None and tail.fetched_generation == tail.generation:
            return
        generation = tail.generation  # a ring during the fetch forces another one
        if tail.covers_after is None:
            page = self.events.range_after(stream, after)
            tail.covers_after = entry_key(after or "0")
        else:
            page = self.events.range_after(stream, self._tail_end(tail))
        tail.extend(page)
        # A full page may not reach the end of the stream: until a short page proves
        # the tail is current, every read fetches again (no doorbell will ring for
        # events that were already there).
        tail.fetched_generation = generation if len(page) < READ_PAGE else -1

    def _prefetch(self, tail: _Tail, stream: str) -> None:
        """Fetch a rung stream's news once, before its waiters wake (the listener calls it).

        Otherwise the first waiter to wake fetches it while the rest queue on the
        tail's lock, each parked and woken again in turn: a thousand extra switches per
        event. The lock is not held while Redis answers: readers still busy with the
        previous event are served what the tail has (the ring after this fetch sends
        them back for the rest). A failure is left to the waiters, whose own read
        meets it and advises their clients."""
        with tail.lock:
            if tail.covers_after is None or tail.fetched_generation == tail.generation:
                return
            generation, start = tail.generation, self._tail_end(tail)
            tail.prefetching = True
        page: list[Event] | None = None
        try:
            page = self.events.range_after(stream, start)
        except redis.RedisError as exc:
            log.debug("prefetch of a rung stream failed (%r); its readers will retry", exc)
        finally:
            with tail.lock:
                tail.prefetching = False
                if page is not None and self._tail_end(tail) == start:
                    tail.extend(page)
                    tail.fetched_generation = generation if len(page) < READ_PAGE else -1

    @staticmethod
    def _tail_end(tail: _Tail) -> str:
        """The position the tail's next fetch starts after: its last event, or where it began."""
        if tail.events:
            return tail.events[-1].id
        assert tail.covers_after is not None
        millis, seq = tail.covers_after
        return f"{millis}-{seq}"

    def _ring(self, stream: str) -> None:
        with self._lock:
            tail = self._tails.get(stream)
            if tail is not None:
                tail.generation += 1
            waiters = list(self._waiters.get(stream, ()))
        if tail is not None and tail.covers_after is not None and waiters:
            self._prefetch(tail, stream)
            with self._lock:  # a socket that began following meanwhile read the old tail
                waiters = list(self._waiters.get(stream, ()))
        for waiter in waiters:
            if waiter.deliver is None or not self._delivered(waiter.deliver, stream):
                waiter.ring()

    @staticmethod
    def _delivered(deliver: Callable[[str], bool], stream: str) -> bool:
        try:
            return deliver(stream)
        except Exception:  # noqa: BLE001 - one socket's failure must not stop the listener
            log.debug("direct delivery failed; waking the waiter instead", exc_info=True)
            return False

    def fresh_after(self, stream: str, after: str) -> list[Event] | None:
        """The tail's events after ``after`` if the tail is current and free right now, else None.

        Never waits and never reads Redis: the listener asks it for each socket
        of a rung stream, right after its prefetch, to send the news without
        waking the socket's greenlet."""
        tail = self._tails.get(stream)
        if tail is None or tail.prefetching or tail.fetched_generation != tail.generation:
            return None
        if not tail.lock.acquire(blocking=False):
            return None  # a reader is fetching: it will be rung
        try:
            return tail.after(entry_key(after or "0"))
        finally:
            tail.lock.release()

    def _listen_forever(self) -> None:
        backoff = 0.1
        failures = 0
        while not self._stopping.is_set():
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.keys.doorbell_channel())
                self.wake_all()  # anything published while we were not listening
                self.subscribed.set()
                backoff, failures = 0.1, 0
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message and message.get("type") == "message":
                        self._ring(str(message["data"]))
            except redis.RedisError as exc:
                self.subscribed.clear()
                # A blip is routine (waiters re-read on reconnect); an outage is worth a warning.
                failures += 1
                level = logging.WARNING if failures >= OUTAGE_AFTER_FAILURES else logging.DEBUG
                log.log(level, "doorbell listener lost Redis (%r); retry in %.1fs", exc, backoff)
                # Idle followers make no Redis call of their own, so they would not notice:
                # wake them to re-read, which fails, and they advise their clients (1013).
                self.wake_all()
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
