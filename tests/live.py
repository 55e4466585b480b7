"""Real gunicorn instances for tests that need real HTTP, SSE and WebSockets."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devtools.servers import free_port

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class WebInstance:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_web(
    log_dir: Path,
    extra_env: dict[str, str] | None = None,
    workers: int = 1,
    port: int | None = None,
) -> WebInstance:
    """Start gunicorn (gevent workers) with the session's MAILCHAT_* environment.

    On a free port, or on ``port`` (a restart test starts a new instance where
    the stopped one listened, so its clients reconnect to the same URL).
    """
    port = port or free_port()
    env = dict(os.environ)
    env.update(
        MAILCHAT_WEB_PORT=str(port),
        MAILCHAT_WEB_WORKERS=str(workers),
        MAILCHAT_WS_ALLOWED_ORIGINS=f"http://127.0.0.1:{port},http://allowed.example",
    )
    env.update(extra_env or {})
    log_path = log_dir / f"web-{port}.log"
    with open(log_path, "ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    instance = WebInstance(port, process, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{instance.base}/healthz", timeout=1):
                return instance
        except OSError:
            time.sleep(0.1)
    instance.stop(signal.SIGKILL)
    raise RuntimeError(f"gunicorn not ready:\n{log_path.read_text()[-3000:]}")


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def parse_sse(lines: list[str]) -> list[dict[str, Any]]:
    """SSE text lines → messages ``{"id", "event", "data"}`` (comments kept as event ':')."""
    messages: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in lines:
        if line == "":
            if current:
                # A block with only "retry:" is the reconnect delay, not an event.
                current.setdefault("event", "retry" if set(current) == {"retry"} else "message")
                messages.append(current)
                current = {}
        elif line.startswith(":"):
            messages.append({"event": ":", "data": line[1:].strip()})
        else:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            current[field] = json.loads(value) if field == "data" else value
    return messages


class SseReader:
    """Reads an SSE response line by line (urllib), so tests can stop mid-stream."""

    def __init__(
        self, url: str, headers: dict[str, str] | None = None, timeout: float = 30
    ) -> None:
        request = urllib.request.Request(url, headers=headers or {})
        try:
            self.response = urllib.request.urlopen(request, timeout=timeout)
            self.status = self.response.status
            self.headers = dict(self.response.headers)
        except urllib.error.HTTPError as error:
            self.response = None
            self.status = error.code
            self.headers = dict(error.headers)
            self.body = error.read()

    def messages(self):  # type: ignore[no-untyped-def]
        """Yield parsed messages as they arrive."""
        assert self.response is not None
        current: list[str] = []
        for raw in self.response:
            line = raw.decode().rstrip("\r\n")
            current.append(line)
            if line == "":
                parsed = parse_sse(current)
                current = []
                yield from parsed

    def close(self) -> None:
        if self.response is not None:
            self.response.close()


def start_worker(
    settings: Any,
    log_path: Path,
    env: dict[str, str],
    concurrency: int = 2,
    queues: tuple[str, ...] | None = None,
) -> subprocess.Popen[bytes]:
    """A real Celery worker subprocess (own session, so a test can kill -9 its whole group),
    on every queue unless told, returned once it answers a ping."""
    from celery_app import create_celery, worker_command
    from shared.core.task_names import ALL_QUEUES

    with open(log_path, "ab") as sink:
        process = subprocess.Popen(
            worker_command(
                concurrency=concurrency,
                hostname=f"test-{os.getpid()}-{time.monotonic_ns()}@%h",
                queues=queues or ALL_QUEUES,
            ),
            cwd=PROJECT_ROOT,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    client = create_celery(settings, with_tasks=False)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited:\n{log_path.read_text()[-3000:]}")
        if client.control.ping(timeout=0.5):
            return process
    process.kill()
    raise RuntimeError(f"celery worker not ready:\n{log_path.read_text()[-3000:]}")
