"""Fault-test helpers: a broker (Redis database) of a test's own with its own workers, and a hung
search server. Import the fixtures into a test module or conftest to use them."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.assistant.asking import StartedQuestion, enqueue_answer, start_question
from shared.core.clients import get_redis
from shared.core.events import TERMINAL_TYPES
from shared.core.settings import ENV_PREFIX, Settings
from shared.realtime.eventlog import Event, EventLog
from tests.live import start_worker


@dataclasses.dataclass
class Isolated:
    """Settings (and the matching environment) on a Redis database of the test's own.

    The session's worker consumes the session's broker only, so tasks sent here
    wait for the workers this test starts, and its event logs are its own.
    """

    settings: Settings
    env: dict[str, str]
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)

    @property
    def redis(self) -> Any:
        return get_redis(self.settings)

    def start_worker(self, name: str) -> subprocess.Popen[bytes]:
        process = start_worker(self.settings, self.log_dir / f"{name}.log", self.env)
        self.workers.append(process)
        return process

    def ask(self, user_id: str, question: str = "interview") -> StartedQuestion:
        """Record a question and send its answer task, as the web does."""
        from celery_app import create_celery

        started = self.record(user_id, question)
        enqueue_answer(
            create_celery(self.settings, with_tasks=False).send_task,
            self.settings,
            user_id,
            started,
        )
        return started

    def record(self, user_id: str, question: str = "interview") -> StartedQuestion:
        """Record a question without sending its task (a task the broker lost)."""
        return start_question(
            self.redis,
            self.settings,
            user_id=user_id,
            question=question,
            window_days=30,
            conversation_id=None,
            client_message_id=None,
        )

    def ends(self, started: StartedQuestion) -> list[Event]:
        """The question's ``done``/``error`` events (exactly one when all is well)."""
        events = EventLog(self.redis, self.settings)
        stream = events.conversation_stream(started.conversation_id)
        return [
            e
            for e in events.read(stream, count=10_000).events
            if e.type in TERMINAL_TYPES
            and e.data.get("client_message_id") == started.client_message_id
        ]

    def wait_for_ends(
        self,
        questions: list[StartedQuestion],
        timeout: float,
        poke: Callable[[], None] | None = None,
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.ends(q) for q in questions):
                return
            if poke is not None:
                poke()
            time.sleep(0.5)


@pytest.fixture()
def isolated(settings: Settings, session_dir: Path) -> Iterator[Callable[..., Isolated]]:
    """``isolated(db, **setting overrides)``: an ``Isolated`` on Redis database ``db``."""
    made: list[Isolated] = []

    def make(db: int, **overrides: Any) -> Isolated:
        url = settings.redis_url.rsplit("/", 1)[0] + f"/{db}"
        values = {"redis_url": url, **overrides}
        env = {**os.environ, **{ENV_PREFIX + k.upper(): str(v) for k, v in values.items()}}
        env.pop("MAILCHAT_NO_SKIPS", None)
        iso = Isolated(dataclasses.replace(settings, **values), env, session_dir)
        iso.redis.flushdb()
        made.append(iso)
        return iso

    yield make
    for iso in made:
        for process in iso.workers:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
        iso.redis.flushdb()


class Blackhole:
    """A TCP server that accepts connections and never answers: a hung search server."""

    def __init__(self) -> None:
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.connections: list[socket.socket] = []
        self.stopped = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self.stopped.is_set():
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            self.connections.append(connection)  # held open, never read or answered

    def wait_for_connection(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not self.connections and time.monotonic() < deadline:
            time.sleep(0.05)
        return bool(self.connections)

    def close(self) -> None:
        self.stopped.set()
        self.listener.close()
        for connection in self.connections:
            connection.close()


@pytest.fixture()
def blackhole() -> Iterator[Blackhole]:
    server = Blackhole()
    yield server
    server.close()
