"""``reconnect_storm``: 1,000 WebSocket clients dropped at once by a web restart.

Each client follows a conversation of its own (``resume`` from the start)
while a producer keeps appending events to all 1,000 conversations, before,
during and after the restart. The web process gets SIGTERM (every socket gets
advice + 1012), a new one is started on the same port once it has exited, and
the clients reconnect with full-jitter backoff and ``resume`` from the last
event they saw. A client counts as *resumed* once it is back, has sent its
``resume``, and has received every event appended to its conversation before
it came back. Figures:

- ``reconnect_storm.all_resumed``: seconds from the SIGTERM until the last
  client resumed, beside the floor no client can beat: the restart alone
  (SIGTERM until the new process answers ``/healthz``);
- ``reconnect_storm.lost`` / ``doubled``: judged by the chaos checker
  (``bench.chaos.history``) over the run's history of every event appended
  (sent/acked) and received, with ids.

The clients are asyncio ``websockets`` connections in this one process: a
thread per client would measure the benchmark, not the server.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from bench.chaos.history import History, check, read
from bench.results import Figure
from bench.stack import wait_http
from devtools.run import PROJECT_ROOT, settings_environment
from shared.core.clients import get_redis
from shared.core.settings import Settings
from shared.realtime.conversations import claim_conversation
from shared.realtime.eventlog import EventLog, entry_key

CLIENTS = 1000
EVENTS_PER_SECOND = 300  # over all conversations: each gets one every ~3 s
BEFORE_RESTART_SECONDS = 4.0
AFTER_RESUMED_SECONDS = 2.0
CONNECT_CONCURRENCY = 50
RESUME_DEADLINE_SECONDS = 60.0
DRAIN_DEADLINE_SECONDS = 30.0
EVENT_TYPE = "bench.storm"
AIM_RESUMED = "<= 10 s"


@dataclass
class Client:
    """One simulated tab: its conversation, what it received, and when it resumed."""

    number: int
    conversation_id: str
    stream: str
    epoch: str
    last_id: str = "0"
    connects: int = 0
    resumed_at: float | None = None  # after the restart
    waiting_for: str | None = None  # the last event appended before it came back
    closes: dict[int, int] = field(default_factory=dict)


class Storm:
    """The clients, the producer and the history they share."""

    def __init__(self, settings: Settings, token: str, history: History) -> None:
        self.settings, self.token, self.history = settings, token, history
        self.url = f"ws://{settings.web_host}:{settings.web_port}/ws"
        self.origin = f"http://{settings.web_host}:{settings.web_port}"
        self.events = EventLog(get_redis(settings), settings)
        self.last_acked: dict[str, str] = {}  # stream -> last id the producer got back
        self.restarted_at: float | None = None
        self.stopping = False
        self.producing = threading.Event()
        self.connected = 0
        self.resets = 0
        self.advice: dict[str, int] = {}
        self.old_exit_seconds = 0.0

    # The producer: a thread, round-robin over the conversations, at a fixed rate.
    def produce(self, clients: list[Client]) -> None:
        number, started = 0, time.monotonic()
        while self.producing.is_set():
            client = clients[number % len(clients)]
            message = f"{client.conversation_id}:{number}"
            self.history.sent(client.stream, message)
            appended = self.events.append(
                client.stream,
                EVENT_TYPE,
                {"m": message},
                dedup_key=f"storm:{message}",
                conversation_id=client.conversation_id,
            )
            self.last_acked[client.stream] = appended.id
            self.history.acked(client.stream, message)
            number += 1
            pause = started + number / EVENTS_PER_SECOND - time.monotonic()
            if pause > 0:
                time.sleep(pause)

    async def session(self, client: Client, gate: asyncio.Semaphore) -> None:
        """Connect, resume, receive; reconnect with full-jitter backoff until told to stop."""
        attempt = 0
        while not self.stopping:
            try:
                async with gate:
                    ws = await connect(
                        self.url,
                        origin=self.origin,  # type: ignore[arg-type]
                        open_timeout=10,
                        close_timeout=1,
                        ping_interval=None,
                        max_queue=None,
                    )
                attempt = 0
                await self.follow(client, ws)
            except ConnectionClosed as closed:
                code = closed.rcvd.code if closed.rcvd else 1006
                client.closes[code] = client.closes.get(code, 0) + 1
            except (OSError, InvalidHandshake, InvalidStatus, TimeoutError):
                pass  # the server is down or not up yet: retry
            if self.stopping:
                return
            attempt += 1
            await asyncio.sleep(random.uniform(0, min(2.0, 0.1 * 2**attempt)))

    async def follow(self, client: Client, ws: ClientConnection) -> None:
        async with ws:
            await ws.send(json.dumps({"type": "auth", "token": self.token}))
            while json.loads(await ws.recv()).get("type") != "ready":
                pass
            resume = {"conversation_id": client.conversation_id, "after": client.last_id}
            await ws.send(json.dumps({"type": "resume", "epoch": client.epoch, **resume}))
            client.connects += 1
            if client.connects == 1:
                self.history.follows(str(client.number), client.stream)
                self.connected += 1
            elif self.restarted_at is not None and client.resumed_at is None:
                client.waiting_for = self.last_acked.get(client.stream, "0")
                self.note_caught_up(client)
            async for text in ws:
                frame = json.loads(text)
                kind = frame.get("type")
                if kind == "ping":
                    await ws.send('{"type":"pong"}')
                elif kind == EVENT_TYPE and frame.get("conversation_id") == client.conversation_id:
                    self.history.received(
                        str(client.number), client.stream, frame["data"]["m"], frame["id"]
                    )
                    client.last_id = frame["id"]
                    self.note_caught_up(client)
                elif kind in ("advice", "error"):  # why the server closes or refuses
                    why = f"{kind}:{frame.get('why') or frame.get('code')}"
                    self.advice[why] = self.advice.get(why, 0) + 1
                elif kind == "reset":  # its position was lost: counted, and judged as lost events
                    self.resets += 1

    def note_caught_up(self, client: Client) -> None:
        if client.resumed_at is None and client.waiting_for is not None:
            if entry_key(client.last_id) >= entry_key(client.waiting_for):
                client.resumed_at = time.monotonic()


def web_environment(settings: Settings) -> dict[str, str]:
    """The environment ``bench.stack.web_and_worker`` gives its web process."""
    env = settings_environment(settings)
    env["MAILCHAT_WEB_WORKERS"] = "1"
    env["MAILCHAT_WS_ALLOWED_ORIGINS"] = f"http://{settings.web_host}:{settings.web_port}"
    return env


def start_web(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_ROOT,
            env=web_environment(settings),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _storm(
    storm: Storm, clients: list[Client], web: subprocess.Popen[bytes], log: Path
) -> tuple[float, float, subprocess.Popen[bytes]]:
    """Run the storm; (seconds until all resumed, restart alone seconds, the new web process)."""
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    sessions = [asyncio.create_task(storm.session(c, gate)) for c in clients]
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + RESUME_DEADLINE_SECONDS
    while storm.connected < len(clients) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    if storm.connected < len(clients):
        raise RuntimeError(f"only {storm.connected} of {len(clients)} clients connected")
    storm.producing.set()
    producer = loop.run_in_executor(None, storm.produce, clients)
    await asyncio.sleep(BEFORE_RESTART_SECONDS)
    started = time.monotonic()
    storm.restarted_at = started
    web.send_signal(signal.SIGTERM)
    await loop.run_in_executor(None, web.wait, 30)
    storm.old_exit_seconds = time.monotonic() - started
    new_web = start_web(storm.settings, log)
    base = f"http://{storm.settings.web_host}:{storm.settings.web_port}"
    await loop.run_in_executor(None, wait_http, f"{base}/healthz", 60)
    restart_seconds = time.monotonic() - started
    deadline = started + RESUME_DEADLINE_SECONDS
    while time.monotonic() < deadline and any(c.resumed_at is None for c in clients):
        await asyncio.sleep(0.1)
    resumed = [c.resumed_at for c in clients if c.resumed_at is not None]
    all_resumed = max(resumed) - started if len(resumed) == len(clients) else None
    await asyncio.sleep(AFTER_RESUMED_SECONDS)
    storm.producing.clear()
    await producer
    deadline = time.monotonic() + DRAIN_DEADLINE_SECONDS
    while time.monotonic() < deadline and any(
        c.last_id != storm.last_acked.get(c.stream, c.last_id) for c in clients
    ):
        await asyncio.sleep(0.2)
    storm.stopping = True
    for task in sessions:
        task.cancel()
    await asyncio.gather(*sessions, return_exceptions=True)
    return (all_resumed if all_resumed is not None else float("nan")), restart_seconds, new_web


def run(
    settings: Settings, workdir: Path, web: subprocess.Popen[bytes], user_id: str, token: str
) -> tuple[list[Figure], subprocess.Popen[bytes]]:
    """The storm's figures, and the web process now serving (the caller stops it)."""
    events = EventLog(get_redis(settings), settings)
    clients = []
    for number in range(CLIENTS):
        conversation_id = claim_conversation(get_redis(settings), settings, user_id, None)
        stream = events.conversation_stream(conversation_id)
        clients.append(Client(number, conversation_id, stream, events.epoch(stream)))
    path = workdir / "reconnect-storm-history.jsonl"
    with History(path) as history:
        storm = Storm(settings, token, history)
        all_resumed, restart_seconds, new_web = asyncio.run(
            _storm(storm, clients, web, workdir / "web.log")
        )
    verdict = check(read(path))
    resumed = sum(1 for c in clients if c.resumed_at is not None)
    after = [
        c.resumed_at - storm.restarted_at for c in clients if c.resumed_at and storm.restarted_at
    ]
    codes: dict[str, int] = {}
    for client in clients:
        for code, times in client.closes.items():
            codes[str(code)] = codes.get(str(code), 0) + times
    detail: dict[str, Any] = {
        "clients": CLIENTS,
        "resumed": resumed,
        "events_per_second": EVENTS_PER_SECOND,
        "acked": verdict.acked,
        "received": verdict.received,
        "out_of_order": len(verdict.out_of_order),
        "close_codes": codes,
        "connects": sum(c.connects for c in clients),
        "resets": storm.resets,
        "advice": storm.advice,
        "old_web_exit_seconds": round(storm.old_exit_seconds, 2),
        "resumed_p50_seconds": round(statistics.median(after), 2) if after else None,
    }
    value = None if all_resumed != all_resumed else round(all_resumed, 2)  # NaN: not all resumed
    return [
        Figure(
            "reconnect_storm.all_resumed",
            value,
            "s",
            peer=round(restart_seconds, 2),
            peer_name="web restart alone",
            aim=AIM_RESUMED,
            detail=detail,
        ),
        Figure("reconnect_storm.lost", len(verdict.lost), "events", aim="0", detail=detail),
        Figure("reconnect_storm.doubled", len(verdict.doubled), "events", aim="0", detail=detail),
    ], new_web
