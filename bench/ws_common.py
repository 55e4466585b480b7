"""What ``ws_idle`` and ``ws_fanout`` share: the two servers, their protocols, many sockets.

Both benchmarks measure Mailchat's ``/ws`` beside a Flask-SocketIO peer
(``bench/peers/socketio_app.py``) in the same run, each as one gunicorn
process with a gevent worker, driven by one selector-driven client
(``bench.wsclient.RawSocket``): a thread per socket would measure the client.
The peer speaks Engine.IO v4 over a plain WebSocket (``transport=websocket``),
which is what python-socketio's own client does after its upgrade.
"""

from __future__ import annotations

import json
import secrets
import selectors
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.realtime import raise_fd_limit, worker_rss_bytes
from bench.stack import wait_http
from bench.wsclient import Closed, RawSocket
from devtools.run import PROJECT_ROOT, settings_environment
from devtools.servers import free_port
from shared.core.clients import get_redis
from shared.core.settings import Settings
from shared.identity.users import create_user, issue_token

PEER_NAME = "Flask-SocketIO"
USERS = 100  # Mailchat sockets are spread over this many people (each has its own stream)
BATCH = 200  # sockets opened between two pumps: the first ones must answer their pings


def peer_version() -> str:
    from importlib.metadata import version

    return f"{PEER_NAME} {version('flask-socketio')}"


@dataclass
class Server:
    """A running gunicorn (master + one gevent worker) and how to talk to it."""

    name: str
    port: int
    master: subprocess.Popen[bytes]
    path: str
    origin: str | None
    tokens: list[str] = field(default_factory=list)  # Mailchat only
    user_ids: list[str] = field(default_factory=list)  # Mailchat only, one per token

    def rss(self) -> int:
        return worker_rss_bytes(self.master.pid)


@contextmanager
def _gunicorn(
    name: str, command: list[str], env: dict[str, str], workdir: Path, port: int
) -> Iterator[subprocess.Popen[bytes]]:
    log_path = workdir / f"{name}-{port}.log"
    with open(log_path, "wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *command],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=60)
        except RuntimeError:
            print(log_path.read_text()[-3000:], file=sys.stderr)
            raise
        yield process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def mailchat(
    settings: Settings, workdir: Path, sockets: int, users: int = USERS
) -> Iterator[Server]:
    """Mailchat's web process as ``make run`` starts it, sized for ``sockets`` sockets."""
    raise_fd_limit()
    port = free_port()
    env = settings_environment(settings)
    env.update(
        MAILCHAT_WEB_PORT=str(port),
        MAILCHAT_WEB_HOST="127.0.0.1",
        MAILCHAT_WEB_WORKERS="1",
        MAILCHAT_WS_ALLOWED_ORIGINS=f"http://127.0.0.1:{port}",
        MAILCHAT_WS_MAX_CONNECTIONS=str(sockets + 500),
        MAILCHAT_WS_MAX_SOCKETS_PER_USER=str(sockets // users + 100),
    )
    r = get_redis(settings)
    tag = secrets.token_hex(3)
    people = [
        create_user(r, settings, f"ws-{tag}-{n}@example.com", "bench-pass-1") for n in range(users)
    ]
    tokens = [issue_token(settings, person) for person in people]
    command = ["--config", "deploy/gunicorn.conf.py", "wsgi:app"]
    with _gunicorn("mailchat", command, env, workdir, port) as master:
        origin = f"http://127.0.0.1:{port}"
        yield Server("Mailchat", port, master, "/ws", origin, tokens, [p.id for p in people])


@contextmanager
def peer(settings: Settings, workdir: Path, sockets: int) -> Iterator[Server]:
    """The Flask-SocketIO peer: the same gunicorn, gevent worker and single process."""
    import importlib.util

    if importlib.util.find_spec("flask_socketio") is None:
        raise RuntimeError("the peer needs Flask-SocketIO: `make bench` installs '.[bench]'")
    raise_fd_limit()
    port = free_port()
    env = settings_environment(settings)
    env.update(PEER_MESSAGE_QUEUE=settings.redis_url, PEER_CHANNEL=f"bench-{secrets.token_hex(3)}")
    command = [
        "--worker-class",
        "gevent",
        "--workers",
        "1",
        "--worker-connections",
        str(sockets + 500),
        "--bind",
        f"127.0.0.1:{port}",
        "--timeout",
        "60",
        "bench.peers.socketio_app:app",
    ]
    with _gunicorn("peer", command, env, workdir, port) as master:
        server = Server(peer_version(), port, master, "/socket.io/?EIO=4&transport=websocket", None)
        server.tokens = [env["PEER_CHANNEL"]]  # the channel its emitters publish on
        yield server


class Sockets:
    """Many sockets on one selector, speaking Mailchat's or the peer's protocol.

    ``on_event(index, data)`` gets each benchmark event (``{"n", "sent_at"}``);
    pings are answered, close codes counted (a 1011 is a failed benchmark).
    """

    def __init__(self, server: Server) -> None:
        self.server = server
        self.mailchat = server.path == "/ws"
        self.selector = selectors.DefaultSelector()
        self.sockets: list[RawSocket] = []
        self.ready: set[int] = set()
        self.closes: Counter[int] = Counter()
        self.advice: Counter[str] = Counter()  # Mailchat's advice/error frames, by why/code
        self.open_count = 0
        self.on_event: Callable[[int, dict[str, Any]], None] = lambda index, data: None
        self.on_ready: Callable[[int], None] = lambda index: None

    def open(self, count: int, timeout: float = 300) -> int:
        """Open ``count`` sockets in batches; returns how many became ready."""
        deadline = time.monotonic() + timeout
        while len(self.sockets) < count and time.monotonic() < deadline:
            for _ in range(min(BATCH, count - len(self.sockets))):
                index = len(self.sockets)
                raw = RawSocket(
                    "127.0.0.1", self.server.port, self.server.origin, path=self.server.path
                )
                self.sockets.append(raw)
                self.selector.register(raw.sock, selectors.EVENT_READ, index)
                self.open_count += 1
                if self.mailchat:
                    token = self.server.tokens[index % len(self.server.tokens)]
                    raw.send_text(json.dumps({"type": "auth", "token": token}))
                self._read(index)  # the peer's open packet may have come with the handshake
                if index % 20 == 0:
                    self.poll()  # a slow handshake must not leave earlier pings unanswered
            self.pump_until(
                lambda: len(self.ready) >= len(self.sockets), deadline - time.monotonic()
            )
        return len(self.ready)

    def poll(self) -> None:
        """Read whatever has arrived, without waiting."""
        for key, _ in self.selector.select(timeout=0):
            self._read(key.data)

    def pump(self, seconds: float) -> None:
        self.pump_until(lambda: False, seconds)

    def pump_until(self, done: Callable[[], bool], seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not done():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            for key, _ in self.selector.select(timeout=min(0.2, remaining)):
                self._read(key.data)
        return True

    def _read(self, index: int) -> None:
        raw = self.sockets[index]
        try:
            for text in raw.texts():
                self._handle(index, raw, text)
        except Closed as closed:
            self.closes[closed.code] += 1
            self._forget(index)

    def _handle(self, index: int, raw: RawSocket, text: str) -> None:
        if self.mailchat:
            frame = json.loads(text)
            kind = frame.get("type")
            if kind == "bench":
                self.on_event(index, frame["data"])
            elif kind == "ping":
                raw.send_text('{"type":"pong"}')
            elif kind == "ready":
                self.ready.add(index)
                self.on_ready(index)
            elif kind in ("advice", "error"):
                self.advice[f"{kind}:{frame.get('why') or frame.get('code')}"] += 1
            return
        if text.startswith("42"):  # a Socket.IO event: 42["bench", {...}]
            name, data = json.loads(text[2:])
            if name == "bench":
                self.on_event(index, data)
        elif text == "2":  # Engine.IO ping: answer or be dropped
            raw.send_text("3")
        elif text.startswith("0"):  # Engine.IO open: join the default namespace
            raw.send_text("40")
        elif text.startswith("40"):
            self.ready.add(index)
            self.on_ready(index)

    def _forget(self, index: int) -> None:
        raw = self.sockets[index]
        try:
            self.selector.unregister(raw.sock)
        except (KeyError, ValueError):
            pass
        raw.sock.close()
        self.ready.discard(index)
        self.open_count -= 1

    def send_all(self, text: str) -> None:
        for index in sorted(self.ready):
            self.sockets[index].send_text(text)

    def close_all(self) -> None:
        for raw in self.sockets:
            if raw.sock.fileno() != -1:
                try:
                    self.selector.unregister(raw.sock)
                except (KeyError, ValueError):
                    pass
                raw.close()
        self.selector.close()
        self.ready.clear()
        self.open_count = 0


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]
