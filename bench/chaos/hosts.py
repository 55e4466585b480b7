"""The Mailchat stack spread over the namespaces of a ``Topology``.

``data`` runs redis-server and noida-db (each bound to the namespace's own
address, started by ``devtools.servers`` through ``ip netns exec``) and
Celery beat, the one scheduler; ``web1`` and ``web2`` each run a gevent
gunicorn and a Celery worker on every queue. Every host uses the standard
ports (each namespace has its own), and every process gets its own process
group, so stopping it stops what it forked.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from bench.chaos.topology import Host, Topology
from celery_app import create_celery, worker_command
from devtools.run import PROJECT_ROOT, settings_environment
from devtools.servers import start_noida_elasticsearch, start_redis
from shared.core.clients import get_elasticsearch
from shared.core.settings import Settings
from shared.index.template import bootstrap

REDIS_PORT, SEARCH_PORT, WEB_PORT = 6379, 9200, 8000  # every host has its own ports
ORIGIN = "http://mailchat.netns"  # the page the followers' sockets claim to come from
# Shortened for the run (with Plan.visibility_timeout_seconds), so a cut shows recovery
# within it: beat re-sends a delivery still unsettled after 6 s, every 2 s (production:
# 120 s and 30 s).
RUN_SETTINGS: dict[str, Any] = {
    "delivery_redeliver_after_seconds": 6.0,
    "delivery_sweep_seconds": 2.0,
    "ws_allowed_origins": ORIGIN,
    "web_port": WEB_PORT,
    "web_workers": 1,
    "worker_concurrency": 2,
}


def _stop_all(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM every process group at once, then SIGKILL whatever is still there after 15 s."""
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _spawn(host: Host, argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as sink:
        return subprocess.Popen(
            host.command(*argv),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url}: its server exited:\n{log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} never answered:\n{log.read_text()[-2000:]}")


class Running(NamedTuple):
    """What ``stack`` started: the settings to reach it, each host's Celery worker (its pid)."""

    settings: Settings
    workers: dict[str, int]


@contextlib.contextmanager
def stack(net: Topology, workdir: Path, visibility_timeout_seconds: int) -> Iterator[Running]:
    """Servers on data, web + worker on web1 and web2, beat on data; stopped on the way out."""
    data = net["data"]
    servers = [
        start_redis(workdir / "redis", REDIS_PORT, host=data.address, command_prefix=data.command())
    ]
    processes: list[subprocess.Popen[bytes]] = []
    workers: dict[str, int] = {}
    try:
        servers.append(
            start_noida_elasticsearch(
                workdir / "search", SEARCH_PORT, host=data.address, command_prefix=data.command()
            )
        )
        settings = Settings.from_env(
            redis_url=servers[0].url,
            elasticsearch_url=servers[1].url,
            data_dir=str(workdir / "root"),
            secret_key=secrets.token_urlsafe(32),
            broker_visibility_timeout_seconds=visibility_timeout_seconds,
            **RUN_SETTINGS,
        )
        bootstrap(get_elasticsearch(settings), settings)
        env = settings_environment(settings)
        for name in ("web1", "web2"):
            host = net[name]
            host_env = {
                **env,
                "MAILCHAT_WEB_HOST": host.address,
                "MAILCHAT_DATA_DIR": str(workdir / name),
            }
            (workdir / name).mkdir()
            command = worker_command(
                concurrency=settings.worker_concurrency, loglevel="INFO", hostname=f"{name}@mc"
            )
            processes.append(_spawn(host, command, host_env, workdir / f"{name}-worker.log"))
            workers[name] = processes[-1].pid  # `ip netns exec` execs: the worker's own pid
            gunicorn = [
                sys.executable,
                "-m",
                "gunicorn",
                "-c",
                "deploy/gunicorn.conf.py",
                "wsgi:app",
            ]
            processes.append(_spawn(host, gunicorn, host_env, workdir / f"{name}-web.log"))
        beat = [sys.executable, "-m", "celery", "-A", "celery_app", "beat", "--loglevel=INFO"]
        beat.append(f"--schedule={workdir / 'celerybeat-schedule'}")
        processes.append(_spawn(data, beat, env, workdir / "beat.log"))
        for number, name in enumerate(("web1", "web2")):
            log = workdir / f"{name}-web.log"
            _wait_http(
                f"http://{net[name].address}:{WEB_PORT}/healthz", processes[number * 2 + 1], log, 60
            )
        _wait_workers(settings, {"web1@mc", "web2@mc"}, 60)
        yield Running(settings, workers)
    finally:
        _stop_all(processes)
        for server in servers:
            server.stop()


def _wait_workers(settings: Settings, names: set[str], timeout: float) -> None:
    client = create_celery(settings, with_tasks=False)
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        for reply in client.control.ping(timeout=1.0):
            seen.update(reply)
        if names <= seen:
            return
    raise RuntimeError(f"workers never answered: {sorted(names - seen)}")
