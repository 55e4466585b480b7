"""The traffic of a chaos run and the clients that watch it.

A person with conversations; followers that are clients as the browser is
one: they follow conversations over WebSocket or SSE, reconnect with backoff
when the server goes away, and resume from their last event id, recording
every event they receive *before* any deduplication, so the checker sees
what the transport really delivered; the producer of deliveries, the outbox
sweep beat would send, and a sampler of the delivery backlog.
"""

from __future__ import annotations

import functools
import json
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis

from bench.chaos.history import History
from bench.wsclient import Closed, RawSocket
from shared.core.clients import get_redis
from shared.core.settings import Settings
from shared.identity.users import User, create_user, issue_token
from shared.realtime.conversations import claim_conversation
from shared.realtime.delivery import Delivery, deliver, enqueue_delivery
from shared.realtime.eventlog import EventLog

ORIGIN = "http://allowed.example"  # tests/live.py allows it on every web instance
EVENT_TYPE = "chaos"


# --- people and conversations ------------------------------------------------------------


@dataclass
class Person:
    user: User
    settings: Settings
    conversations: list[str]
    epochs: dict[str, str]

    def token(self) -> str:
        return issue_token(self.settings, self.user)

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}


def make_person(settings: Settings, conversations: int) -> Person:
    """A new user owning ``conversations`` conversations (each with its epoch set)."""
    r = get_redis(settings)
    user = create_user(
        r, settings, f"chaos-{secrets.token_hex(5)}@example.com", secrets.token_urlsafe(16)
    )
    events = EventLog(r, settings)
    ids = [claim_conversation(r, settings, user.id, None) for _ in range(conversations)]
    epochs = {c: events.epoch(events.conversation_stream(c)) for c in ids}
    return Person(user, settings, ids, epochs)


def http_json(
    method: str,
    url: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> tuple[int, dict[str, str], Any]:
    """(status, headers, parsed JSON body or None); status 0 when no answer came at all."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, head, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, head, raw = error.code, dict(error.headers), error.read()
    except OSError:
        return 0, {}, None
    try:
        return status, head, json.loads(raw) if raw else None
    except ValueError:
        return status, head, None


# --- followers ---------------------------------------------------------------------------


class Follower(threading.Thread):
    """A client following conversations until stopped, reconnecting and resuming."""

    def __init__(
        self, name: str, base: str, person: Person, conversations: list[str], history: History
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.client, self.base, self.person, self.history = name, base, person, history
        self.conversations = conversations
        self.cursors = dict.fromkeys(conversations, "0")
        self.epochs = {c: person.epochs[c] for c in conversations}
        self.got: dict[str, set[str]] = defaultdict(set)
        self.stop = threading.Event()
        self.connects = 0
        self.resets = 0
        self.errors: list[str] = []

    def run(self) -> None:
        for conversation in self.conversations:
            self.history.follows(self.client, conversation)
        delay = 0.2
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.session()
            except (OSError, Closed, TimeoutError, ValueError, ConnectionError) as exc:
                self.errors.append(type(exc).__name__)
            if self.stop.is_set():
                return
            # Full-jitter backoff, reset after a connection that lasted (like js/socket.js).
            delay = 0.2 if time.monotonic() - started > 5 else min(2.0, delay * 2)
            self.stop.wait(secrets.randbelow(1000) / 1000 * delay + 0.05)

    def session(self) -> None:
        raise NotImplementedError

    def connected(self) -> None:
        """Called once the transport is open; from the second time on it is a resume."""
        self.connects += 1
        if self.connects > 1:
            for conversation in self.conversations:
                self.history.resumed(self.client, conversation, self.cursors[conversation])

    def on_event(self, event: dict[str, Any]) -> None:
        conversation = str(event.get("conversation_id", ""))
        if conversation not in self.cursors:
            return
        message = (event.get("data") or {}).get("chaos")
        if message:
            self.history.received(self.client, conversation, str(message), str(event["id"]))
            self.got[conversation].add(str(message))
        self.cursors[conversation] = str(event["id"])

    def refetch(self, conversation: str) -> None:
        """After ``reset``: the conversation over JSON, applied past the cursor (js/dedup.js)."""
        self.resets += 1
        status, _, body = http_json(
            "GET",
            f"{self.base}/api/conversations/{conversation}/events",
            None,
            self.person.headers(),
        )
        if status != 200 or body is None:
            raise ConnectionError(f"refetch answered {status}")
        self.epochs[conversation] = body["epoch"]
        cursor = self.cursors[conversation]
        for event in body["events"]:
            if cursor == "0" or _after(event["id"], cursor):
                self.on_event(event)


def _after(entry_id: str, cursor: str) -> bool:
    def key(value: str) -> tuple[int, int]:
        millis, _, seq = value.partition("-")
        return int(millis), int(seq or 0)

    return key(entry_id) > key(cursor)


class WsFollower(Follower):
    """One WebSocket following all its conversations (``resume`` each after ``ready``)."""

    def session(self) -> None:
        url = urlsplit(self.base)
        raw = RawSocket(url.hostname or "127.0.0.1", url.port or 80, ORIGIN, timeout=5)
        try:
            raw.send_text(json.dumps({"type": "auth", "token": self.person.token()}))
            frame = raw.receive(10)
            if frame.get("type") != "ready":
                raise ConnectionError(f"no ready: {frame.get('type')}")
            self.connected()
            for conversation in self.conversations:
                raw.send_text(
                    json.dumps(
                        {
                            "type": "resume",
                            "conversation_id": conversation,
                            "epoch": self.epochs[conversation],
                            "after": self.cursors[conversation],
                        }
                    )
                )
            while not self.stop.is_set():
                try:
                    frame = raw.receive(0.5)
                except TimeoutError:
                    continue
                kind = frame.get("type")
                if kind == "ping":
                    raw.send_text('{"type":"pong"}')
                elif kind == "reset":
                    conversation = str(frame.get("conversation_id"))
                    self.refetch(conversation)
                    raw.send_text(
                        json.dumps(
                            {
                                "type": "resume",
                                "conversation_id": conversation,
                                "epoch": self.epochs[conversation],
                                "after": self.cursors[conversation],
                            }
                        )
                    )
                elif kind == "error":
                    raise ConnectionError(f"error frame {frame.get('code')}")
                elif "id" in frame:
                    self.on_event(frame)
        finally:
            raw.close()


class SseFollower(Follower):
    """One EventSource on one conversation, resuming with ``Last-Event-ID``."""

    def session(self) -> None:
        from tests.live import SseReader

        (conversation,) = self.conversations
        headers = self.person.headers()
        if self.cursors[conversation] != "0":
            headers["Last-Event-ID"] = self.cursors[conversation]
        url = (
            f"{self.base}/api/conversations/{conversation}/stream?epoch={self.epochs[conversation]}"
        )
        reader = SseReader(url, headers, timeout=5)
        if reader.status != 200:
            raise ConnectionError(f"stream answered {reader.status}")
        self.connected()
        try:
            for message in reader.messages():
                if self.stop.is_set():
                    return
                kind = message["event"]
                if kind == "reset":
                    self.refetch(conversation)
                    return
                if kind in ("reconnect", "error"):
                    return
                if "id" in message and isinstance(message.get("data"), dict):
                    self.on_event(message["data"])
        finally:
            reader.close()


def start_followers(
    base: str, person: Person, history: History, *, websockets: int, sse: bool
) -> list[Follower]:
    """``websockets`` sockets each following every conversation, and one SSE stream per
    conversation when ``sse``; started, and connected once before this returns."""
    followers: list[Follower] = [
        WsFollower(f"ws{n}", base, person, person.conversations, history) for n in range(websockets)
    ]
    if sse:
        followers += [
            SseFollower(f"sse{n}", base, person, [c], history)
            for n, c in enumerate(person.conversations)
        ]
    for follower in followers:
        follower.start()
    deadline = time.monotonic() + 30
    while any(f.connects == 0 for f in followers) and time.monotonic() < deadline:
        time.sleep(0.05)
    return followers


# --- producing deliveries ----------------------------------------------------------------


class Producer(threading.Thread):
    """Enqueues ``count`` deliveries through ``enqueue_delivery``, round robin over the
    person's conversations: *sent* before, *acked* once the call returned."""

    def __init__(
        self,
        settings: Settings,
        person: Person,
        history: History,
        count: int,
        rate: float,
        *,
        direct: bool = False,
    ) -> None:
        super().__init__(name="producer", daemon=True)
        self.settings, self.person, self.history = settings, person, history
        # direct: append with the event log's own script, as the worker's task does, for a
        # scenario whose subject is not the worker (no worker to start, fewer moving parts).
        self.direct = direct
        self.count, self.interval = count, 1 / rate
        self.acked: dict[str, set[str]] = defaultdict(set)
        self.refused = 0
        self.produced = 0
        self.stop = threading.Event()  # ends the run early (a scenario that sets its own pace)

    def run(self) -> None:
        from celery_app import create_celery

        celery = create_celery(self.settings, with_tasks=False)
        # No result is awaited (the web does the same): no result-store subscription that
        # a Redis restart would break.
        send_task = functools.partial(celery.send_task, ignore_result=True)
        r = get_redis(self.settings)
        conversations = self.person.conversations
        started = time.monotonic()
        for n in range(self.count):
            if self.stop.is_set():
                return
            self.produced = n + 1
            conversation = conversations[n % len(conversations)]
            message = f"m{n}"
            self.history.sent(conversation, message)
            delivery = Delivery(
                "conversation", conversation, EVENT_TYPE, {"chaos": message}, f"chaos:{message}"
            )
            try:
                if self.direct:
                    deliver(r, self.settings, delivery)
                else:
                    enqueue_delivery(send_task, r, self.settings, delivery)
            except Exception:  # noqa: BLE001 - Redis or the broker down: indeterminate
                self.refused += 1
            else:
                self.history.acked(conversation, message)
                self.acked[conversation].add(message)
            pause = started + (n + 1) * self.interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)


def wait_all_received(
    producer: Producer, followers: list[Follower], settings: Settings, timeout: float
) -> float:
    """Seconds until every follower received every acked message of its conversations
    and the outbox is empty (or ``timeout`` passed)."""
    from shared.core.keys import RedisKeys

    started = time.monotonic()
    outbox = RedisKeys(settings.key_prefix).delivery_outbox()
    while time.monotonic() - started < timeout:
        complete = all(producer.acked[c] <= f.got[c] for f in followers for c in f.conversations)
        try:
            empty = get_redis(settings).hlen(outbox) == 0
        except redis.RedisError:
            empty = False
        if complete and empty:
            break
        time.sleep(0.2)
    return time.monotonic() - started


def stop_all(followers: list[Follower]) -> None:
    for follower in followers:
        follower.stop.set()
    for follower in followers:
        follower.join(10)
