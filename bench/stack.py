"""The real stack the benchmarks and the eval run on: local servers, a worker, one web process.

Everything starts on fresh servers in a temporary directory (or the configured URLs),
so results never depend on a running ``make run``, and everything stops afterwards.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery_app import worker_command
from devtools.run import PROJECT_ROOT, settings_environment, start_missing_servers
from devtools.servers import free_port
from shared.core.clients import get_elasticsearch
from shared.core.settings import Settings
from shared.index.template import bootstrap


@contextmanager
def local_servers(key_prefix: str) -> Iterator[tuple[Settings, Path]]:
    """Settings pointing at fresh Redis and noida-db servers (unless URLs are configured)."""
    with tempfile.TemporaryDirectory(prefix=f"{key_prefix.rstrip(':')}-") as tmp:
        workdir = Path(tmp)
        base = Settings.from_env(
            data_dir=str(workdir), web_port=free_port(), key_prefix=key_prefix
        ).with_secret_key()
        settings, servers = start_missing_servers(base)
        try:
            bootstrap(get_elasticsearch(settings), settings)
            yield settings, workdir
        finally:
            for server in servers:
                server.stop()


def post(url: str, body: dict[str, Any], token: str | None = None, timeout: float = 30) -> Any:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, json.dumps(body).encode(), headers, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def wait_http(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{url} never answered")


@contextmanager
def web_and_worker(
    settings: Settings,
    workdir: Path,
    extra_env: dict[str, str] | None = None,
    *,
    concurrency: int | None = None,
    log_prefix: str = "",
) -> Iterator[tuple[str, subprocess.Popen[bytes], subprocess.Popen[bytes]]]:
    """A Celery worker and one gevent gunicorn process; yields (base URL, web, worker).

    A web process that never answers prints the end of its log before the error."""
    env = settings_environment(settings)
    env["MAILCHAT_WEB_WORKERS"] = "1"  # memory per socket is measured on one process
    env["MAILCHAT_WS_ALLOWED_ORIGINS"] = f"http://{settings.web_host}:{settings.web_port}"
    env.update(extra_env or {})
    with (
        open(workdir / f"{log_prefix}worker.log", "wb") as worker_log,
        open(workdir / f"{log_prefix}web.log", "wb") as web_log,
    ):
        worker = subprocess.Popen(
            worker_command(
                concurrency=concurrency or settings.worker_concurrency, loglevel="WARNING"
            ),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=worker_log,
            stderr=subprocess.STDOUT,
        )
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=web_log,
            stderr=subprocess.STDOUT,
        )
    base = f"http://{settings.web_host}:{settings.web_port}"
    try:
        try:
            wait_http(f"{base}/healthz")
        except RuntimeError:
            print((workdir / f"{log_prefix}web.log").read_text()[-3000:], file=sys.stderr)
            raise
        yield base, web, worker
    finally:
        for process in (web, worker):
            process.terminate()
            process.wait(30)
