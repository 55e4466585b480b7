"""The multi-host scenario's two kinds of traffic: a producer of deliveries, and followers.

A follower is what a browser tab does, in a thread: it knows every web
address, opens ``/ws`` on its home instance, authenticates, resumes its
conversation at ``(epoch, last id)`` and records every event it receives in
the History. It sends an application ``ping`` every second: a web host cut
off by the network neither closes the socket nor answers, so a missing
``pong`` is the only way to notice, and the follower then reconnects to the
next address and resumes where it was. It never filters what it receives
(no client-side dedup): a doubled event would show in the checker.

The producer enqueues deliveries with ``enqueue_delivery`` in bursts, the
way a sync run notifies many conversations at once: a burst leaves a
backlog, so at any moment each worker holds tasks it has not acknowledged,
which is what a cut must not lose.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from bench.chaos.history import History
from bench.wsclient import Closed, RawSocket
from shared.core.settings import Settings
from shared.core.task_names import SendTask
from shared.realtime.delivery import Delivery, enqueue_delivery

EVENT_TYPE = "chaos.message"
PING_EVERY_SECONDS = 1.0
DEAD_AFTER_SECONDS = 3.0  # no frame at all (not even a pong) this long: the host is gone
CONNECT_TIMEOUT_SECONDS = 2.0


class HostSilent(Exception):
    """The web instance stopped answering (no pong): treat the socket as dead."""


@dataclass
class Connection:
    """One socket a follower held: where, when it became ready, and what came through it."""

    web: int
    ready_at: float
    first_event_at: float | None = None
    events: int = 0
    ended: str = ""


@dataclass
class Follower:
    """A client following one conversation, failing over between web addresses."""

    name: str
    webs: list[tuple[str, int]]
    home: int
    origin: str
    token: str
    conversation_id: str
    stream: str
    epoch: str
    history: History
    stop: threading.Event
    received: list[str] = field(default_factory=list)
    connections: list[Connection] = field(default_factory=list)
    resets: int = 0
    errors: list[str] = field(default_factory=list)
    last_id: str = "0"
    # The control: a client that wrongly resumes from the start; the checker must see doubles.
    forgets_position: bool = False

    def start(self) -> threading.Thread:
        self.history.follows(self.name, self.stream)
        thread = threading.Thread(target=self.run, name=f"follower-{self.name}", daemon=True)
        thread.start()
        return thread

    def run(self) -> None:
        web = self.home
        while not self.stop.is_set():
            try:
                self.session(web)
            except Exception as exc:  # noqa: BLE001 - the client reconnects whatever happened
                if not isinstance(exc, (OSError, Closed, HostSilent, ValueError)):
                    self.errors.append(f"{type(exc).__name__}: {exc}")  # a bug: shown, not hidden
                if self.connections and not self.connections[-1].ended:
                    self.connections[-1].ended = type(exc).__name__
                web = (web + 1) % len(self.webs)  # the next instance; any one serves any client
                self.stop.wait(random.uniform(0.05, 0.3))  # jittered, so a cut is no stampede

    def session(self, web: int) -> None:
        host, port = self.webs[web]
        raw = RawSocket(host, port, self.origin, timeout=CONNECT_TIMEOUT_SECONDS)
        try:
            raw.send_text(json.dumps({"type": "auth", "token": self.token}))
            self._wait_ready(raw)
            connection = Connection(web, time.monotonic())
            self.connections.append(connection)
            after = "0" if self.forgets_position else self.last_id
            self.history.resumed(self.name, self.stream, after)
            raw.send_text(
                json.dumps(
                    {
                        "type": "resume",
                        "conversation_id": self.conversation_id,
                        "epoch": self.epoch,
                        "after": after,
                    }
                )
            )
            self._follow(raw, connection)
        finally:
            raw.close()

    def _wait_ready(self, raw: RawSocket) -> None:
        deadline = time.monotonic() + DEAD_AFTER_SECONDS
        while time.monotonic() < deadline:
            frame = raw.receive(max(0.01, deadline - time.monotonic()))
            if frame.get("type") == "ready":
                return
        raise HostSilent("no ready frame")

    def _follow(self, raw: RawSocket, connection: Connection) -> None:
        heard = pinged = time.monotonic()
        while not self.stop.is_set():
            now = time.monotonic()
            if now - pinged >= PING_EVERY_SECONDS:
                raw.send_text('{"type":"ping"}')
                pinged = now
            if now - heard > DEAD_AFTER_SECONDS:
                raise HostSilent("no pong")
            try:
                frame = raw.receive(0.25)
            except TimeoutError:
                continue
            heard = time.monotonic()
            self._on_frame(raw, frame, connection)

    def _on_frame(self, raw: RawSocket, frame: dict[str, Any], connection: Connection) -> None:
        kind = frame.get("type")
        if kind == "ping":
            raw.send_text('{"type":"pong"}')
        elif kind == "reset":
            self.resets += 1  # the stream cannot be resumed: never expected in this scenario
        elif kind == "error":
            self.errors.append(str(frame.get("code")))
        elif kind == EVENT_TYPE and frame.get("conversation_id") == self.conversation_id:
            message, position = str(frame["data"]["message"]), str(frame["id"])
            self.history.received(self.name, self.stream, message, position)
            self.received.append(message)
            self.last_id = position
            connection.events += 1
            if connection.first_event_at is None:
                connection.first_event_at = time.monotonic()


@dataclass
class Producer:
    """Bursts of deliveries to the conversations, round robin, each recorded sent then acked."""

    send_task: SendTask
    redis: redis.Redis
    settings: Settings
    conversations: list[tuple[str, str]]  # (conversation id, stream)
    history: History
    burst: int
    acked: dict[str, set[str]] = field(default_factory=dict)  # stream -> messages
    failed: int = 0
    sent: int = 0

    def burst_once(self, number: int, hook: Callable[[int, int], None]) -> None:
        for offset in range(self.burst):
            hook(number, offset)
            conversation_id, stream = self.conversations[offset % len(self.conversations)]
            message = f"b{number:03d}-{offset:03d}"
            self.history.sent(stream, message)
            self.sent += 1
            delivery = Delivery(
                target="conversation",
                target_id=conversation_id,
                event_type=EVENT_TYPE,
                data={"message": message},
                dedup_key=f"chaos:{message}:{conversation_id}",
            )
            try:
                enqueue_delivery(self.send_task, self.redis, self.settings, delivery)
            except redis.RedisError:
                self.failed += 1  # indeterminate: the checker accepts it either way
                continue
            self.history.acked(stream, message)
            self.acked.setdefault(stream, set()).add(message)

    def run(self, seconds: float, stop: threading.Event, hook: Callable[[int, int], None]) -> None:
        """One burst a second for ``seconds``; ``hook(burst, offset)`` before each delivery
        lets the scenario cut in the middle of a burst, while the workers have a backlog."""
        started = time.monotonic()
        number = 0
        while not stop.is_set() and time.monotonic() - started < seconds:
            self.burst_once(number, hook)
            number += 1
            stop.wait(max(0.0, started + number - time.monotonic()))
