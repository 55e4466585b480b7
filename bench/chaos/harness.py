"""What every chaos scenario shares: the stack's environment, followers, the producer, results.

The processes are the ones the tests start (``tests/live.py``: gunicorn and
Celery workers; ``devtools/servers.py``: Redis and noida-db), so a scenario
faults exactly what the suite runs. The followers are clients as the browser
is one: they follow conversations over WebSocket or SSE, reconnect with
backoff when the server goes away, and resume from their last event id; they
record every event they receive, *before* any deduplication, so the checker
sees what the transport really delivered.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import redis

from bench.chaos.history import History, Verdict, check, read
from bench.wsclient import Closed, RawSocket
from devtools.run import settings_environment
from shared.core.clients import get_redis
from shared.core.settings import ENV_PREFIX, Settings
from shared.core.task_names import DELIVERY_SWEEP_OUTBOX
from shared.identity.users import User, create_user, issue_token
from shared.realtime.conversations import claim_conversation
from shared.realtime.delivery import Delivery, deliver, enqueue_delivery
from shared.realtime.eventlog import EventLog

ORIGIN = "http://allowed.example"  # tests/live.py allows it on every web instance
EVENT_TYPE = "chaos"
# Set by start_web itself (its own port and origins): never copied from the settings.
_PER_INSTANCE = {"WEB_PORT", "WEB_WORKERS", "WS_ALLOWED_ORIGINS"}


def child_env(settings: Settings, **overrides: Any) -> dict[str, str]:
    """The settings as MAILCHAT_* variables for web and worker subprocesses, plus overrides
    (``broker_visibility_timeout_seconds=5`` becomes MAILCHAT_BROKER_VISIBILITY_TIMEOUT_SECONDS)."""
    env = settings_environment(settings)
    for name in _PER_INSTANCE:
        env.pop(ENV_PREFIX + name, None)
    for name, value in overrides.items():
        env[ENV_PREFIX + name.upper()] = (
            str(value).lower() if isinstance(value, bool) else str(value)
        )
    return env


CHAOS_SETTINGS: dict[str, Any] = {
    # Redelivery and the outbox within seconds, not the production hour and two minutes:
    # the faults come every few seconds and the run is bounded.
    "broker_visibility_timeout_seconds": 5,
    "delivery_redeliver_after_seconds": 4,
    "sse_ping_seconds": 1,  # a follower notices a dead stream within a second
    "ws_ping_seconds": 5,
    "retention_days": 0,  # keep every generated email: the counts must match exactly
    "login_rate_limit": "100000 per minute",
    "auth_rate_limit": "100000 per minute",
    "ask_rate_limit": "100000 per minute",
    "sync_rate_limit": "100000 per minute",
    "upload_rate_limit": "100000 per minute",
}


def chaos_settings(settings: Settings, **overrides: Any) -> Settings:
    """``settings`` with the chaos values (and ``overrides``): the driver and its children
    then read the same numbers."""
    import dataclasses

    return dataclasses.replace(settings, **{**CHAOS_SETTINGS, **overrides})


@contextmanager
def chaos_servers(workdir: Path, key_prefix: str) -> Iterator[Settings]:
    """Fresh Redis (AOF, ``appendfsync always``: see redis_restart.py) and noida-db servers
    for ``make chaos``, with the settings pointing at them."""
    from devtools.servers import free_port, start_noida_elasticsearch, start_redis
    from shared.core.clients import get_elasticsearch
    from shared.index.template import bootstrap

    redis_server = start_redis(workdir / "redis", appendfsync="always")
    try:
        es_server = start_noida_elasticsearch(workdir / "elasticsearch")
        try:
            settings = Settings.from_env(
                data_dir=str(workdir / "data"),
                web_port=free_port(),
                key_prefix=key_prefix,
                redis_url=redis_server.url,
                elasticsearch_url=es_server.url,
            ).with_secret_key()
            bootstrap(get_elasticsearch(settings), settings)
            yield settings
        finally:
            es_server.stop()
    finally:
        redis_server.stop()


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


# --- workers ---------------------------------------------------------------------------


class SupervisedWorker(threading.Thread):
    """A Celery worker (``tests/live.start_worker``) started again whenever it exits, as
    supervisord does under ``make run`` and ``restart: unless-stopped`` in deploy/.

    ``kill()`` is the fault (SIGKILL to its whole process group: main process and pool);
    ``exits`` counts every death, injected or not (a worker also exits by itself when
    its broker connection breaks badly: README "Chaos")."""

    def __init__(self, settings: Settings, log_path: Path, env: dict[str, str]) -> None:
        super().__init__(name=f"supervise-{log_path.stem}", daemon=True)
        from tests.live import start_worker

        self.settings, self.log_path, self.env = settings, log_path, env
        self.start_worker = start_worker
        self.process = start_worker(settings, log_path, env, concurrency=2)
        self.exits = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.start()

    def run(self) -> None:
        while not self.stop.wait(0.1):
            with self.lock:
                if self.process.poll() is None:
                    continue
                self.exits += 1
                try:
                    self.process = self.start_worker(
                        self.settings, self.log_path, self.env, concurrency=2
                    )
                except RuntimeError:  # e.g. Redis still down for a minute: try again
                    continue

    def kill(self) -> int:
        """SIGKILL the worker now; returns its pid."""
        with self.lock:
            pid = self.process.pid
            _signal_group(pid, signal.SIGKILL)
            self.process.wait()
            return pid

    def shutdown(self) -> None:
        self.stop.set()
        self.join(70)
        with self.lock:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _signal_group(pid: int, signum: int) -> None:
    try:
        os.killpg(pid, signum)
    except ProcessLookupError:
        pass


# --- nginx in front of the web instances --------------------------------------------------


@dataclass
class Proxy:
    process: subprocess.Popen[bytes]
    base: str
    log_path: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def nginx_binary() -> str | None:
    import shutil

    return shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/bin")


def start_nginx(workdir: Path, upstream_ports: list[int]) -> Proxy:
    """A real nginx on deploy/nginx/nginx.conf, its one upstream line replaced by the
    instances here (as tests/deploy/test_nginx.py does), on a free loopback port."""
    from devtools.run import PROJECT_ROOT
    from devtools.servers import free_port

    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx missing; install it with: apt-get install nginx")
    tmp = workdir / "nginx"
    tmp.mkdir(exist_ok=True)
    text = (PROJECT_ROOT / "deploy" / "nginx" / "nginx.conf").read_text()
    upstream = "        server web:8000 max_fails=0;\n"
    if upstream not in text or "listen 80;" not in text:
        raise RuntimeError("deploy/nginx/nginx.conf changed: update bench/chaos/harness.py")
    servers = "".join(f"        server 127.0.0.1:{port} max_fails=0;\n" for port in upstream_ports)
    port = free_port()
    text = text.replace(upstream, servers).replace("listen 80;", f"listen 127.0.0.1:{port};")
    text = text.replace("/tmp/", f"{tmp}/").replace("worker_processes auto;", "worker_processes 1;")
    text = text.replace("/dev/stdout", str(tmp / "access.log"))
    config = tmp / "nginx.conf"
    config.write_text(text)
    log_path = tmp / "nginx.log"
    with open(log_path, "ab") as sink:
        process = subprocess.Popen(
            [binary, "-c", str(config), "-p", str(tmp), "-g", "daemon off;"],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    proxy = Proxy(process, f"http://127.0.0.1:{port}", log_path)
    deadline = time.monotonic() + 15
    while http_json("GET", f"{proxy.base}/healthz", timeout=1)[0] != 200:
        if time.monotonic() > deadline or process.poll() is not None:
            proxy.stop()
            raise RuntimeError(f"nginx did not start:\n{log_path.read_text()[-2000:]}")
        time.sleep(0.1)
    return proxy


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
                    enqueue_delivery(celery.send_task, r, self.settings, delivery)
            except Exception:  # noqa: BLE001 - Redis or the broker down: indeterminate
                self.refused += 1
            else:
                self.history.acked(conversation, message)
                self.acked[conversation].add(message)
            pause = started + (n + 1) * self.interval - time.monotonic()
            if pause > 0:
                time.sleep(pause)


class Sweeper(threading.Thread):
    """Sends ``delivery.sweep_outbox`` every ``seconds``, as beat does every 30 s."""

    def __init__(self, settings: Settings, seconds: float = 2.0) -> None:
        super().__init__(name="sweeper", daemon=True)
        self.settings, self.seconds = settings, seconds
        self.stop = threading.Event()

    def run(self) -> None:
        from celery_app import create_celery

        celery = create_celery(self.settings, with_tasks=False)
        while not self.stop.wait(self.seconds):
            try:
                celery.send_task(DELIVERY_SWEEP_OUTBOX)
            except Exception:  # noqa: BLE001, S110 - the broker is down: next time
                pass


class Backlog(threading.Thread):
    """Samples the delivery queue's length and the outbox's size every second: a backlog
    that grows after the faults stopped is a retry storm, not a slow machine."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(name="backlog", daemon=True)
        self.settings = settings
        self.stop = threading.Event()
        self.samples: list[tuple[int, int]] = []  # (queued tasks, pending deliveries)

    def run(self) -> None:
        from shared.core.keys import RedisKeys
        from shared.core.task_names import QUEUE_DELIVERY

        outbox = RedisKeys(self.settings.key_prefix).delivery_outbox()
        r = get_redis(self.settings)
        while not self.stop.wait(1.0):
            try:
                self.samples.append((int(r.llen(QUEUE_DELIVERY)), int(r.hlen(outbox))))
            except redis.RedisError:
                continue

    def figures(self) -> dict[str, Any]:
        queued = [q for q, _ in self.samples] or [0]
        pending = [p for _, p in self.samples] or [0]
        return {"max queued delivery tasks": max(queued), "max pending deliveries": max(pending)}


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


# --- results -----------------------------------------------------------------------------


@dataclass
class Result:
    """One scenario's outcome: the checker's verdict and the figures worth printing."""

    name: str
    history: Path
    verdict: Verdict
    figures: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # what the scenario itself requires

    @property
    def ok(self) -> bool:
        return self.verdict.ok and not self.problems

    def lines(self) -> list[str]:
        lines = [f"{self.name}: {'ok' if self.ok else 'ANOMALY'} ({self.verdict.summary()})"]
        lines += [f"  {key}: {value}" for key, value in self.figures.items()]
        lines += [f"  problem: {problem}" for problem in self.problems]
        for kind in ("lost", "doubled", "out_of_order", "phantom", "failed_requests"):
            found = getattr(self.verdict, kind)
            if found:
                lines.append(f"  {kind} (first 5 of {len(found)}): {found[:5]}")
        lines.append(f"  history: {self.history}")
        return lines


def judge(name: str, path: Path, figures: dict[str, Any], problems: list[str]) -> Result:
    """Read the history back and check it, with the scenario's own requirements beside it."""
    verdict = check(read(path))
    if not verdict.faults:
        problems.append("no fault was injected: the run proves nothing")
    return Result(name, path, verdict, figures, problems)


def together(*starts: Callable[[], Any]) -> list[Any]:
    """Run slow starters (gunicorn, Celery workers) at once; their results in order.

    Each waits for its process to answer, mostly idle time: side by side the
    stack is up in the time of the slowest, not the sum (the test subset's budget)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(len(starts)) as pool:
        futures = [pool.submit(start) for start in starts]
        return [future.result() for future in futures]


def bounded(seconds: float) -> Callable[[], bool]:
    """A deadline check: ``while within(): ...`` never loops past ``seconds``."""
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() < deadline
