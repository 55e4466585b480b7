"""The stack a chaos scenario faults, and its result.

The processes are the ones the tests start (``tests/live.py``: gunicorn and
Celery workers; ``devtools/servers.py``: Redis and noida-db), so a scenario
faults exactly what the suite runs: the environment they share, a worker kept
running as supervisord keeps it, nginx on the deploy/ configuration, and the
verdict with the scenario's own figures. The clients and the traffic are in
``bench/chaos/traffic.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from bench.chaos.history import Verdict, check, read
from bench.chaos.traffic import http_json
from devtools.run import settings_environment
from shared.core.clients import get_redis
from shared.core.settings import ENV_PREFIX, Settings
from shared.core.task_names import DELIVERY_SWEEP_OUTBOX

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
    "delivery_redeliver_after_seconds": 8,
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
                celery.send_task(DELIVERY_SWEEP_OUTBOX, ignore_result=True)
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
