"""Scenario c: SIGTERM each web instance in turn under load, two instances behind nginx.

nginx (deploy/nginx/nginx.conf, its upstream replaced by the two local
gunicorn instances) is the only address the clients know. Load threads make
requests through it all along (a conversation's events, the conversation
list, SSE tickets: reads and a POST), WebSocket and SSE clients follow a
person's conversations through it, and events keep being appended to them
(with the event log's script, as the delivery task does: no worker is part
of this fault). Then each instance in turn gets SIGTERM (it turns /readyz 503, tells
sockets to reconnect with ``advice`` + 1012, ends SSE streams with
``reconnect``, finishes requests in flight) and is started again on its port.
Judged: 0 failed requests (any 5xx or a connection nginx could not serve),
every client resumed at least once (from its last event id), and every
delivery received exactly once, in order.
"""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.chaos.harness import (
    Result,
    chaos_settings,
    child_env,
    judge,
    start_nginx,
    together,
)
from bench.chaos.history import History
from bench.chaos.traffic import (
    Person,
    Producer,
    http_json,
    make_person,
    start_followers,
    stop_all,
    wait_all_received,
)
from shared.core.settings import Settings
from tests.live import WebInstance, start_web

NAME = "web_sigterm"


@dataclass(frozen=True)
class Params:
    deliveries: int = 100_000  # at most: the deliveries run until both restarts are done
    rate: float = 25.0
    loaders: int = 4
    conversations: int = 4
    websockets: int = 4
    pause: float = 3.0  # between an instance back up and the next SIGTERM
    settle_timeout: float = 90.0


SMALL = Params(rate=16.0, loaders=2, conversations=2, websockets=2, pause=1.0, settle_timeout=45.0)


class Loader(threading.Thread):
    """Requests through the proxy in a loop; each one recorded with its outcome."""

    def __init__(self, name: str, base: str, person: Person, history: History) -> None:
        super().__init__(name=name, daemon=True)
        self.client, self.base, self.person, self.history = name, base, person, history
        self.stop = threading.Event()
        self.done = 0

    def run(self) -> None:
        conversation = self.person.conversations[0]
        calls: list[tuple[str, str, dict[str, Any] | None]] = [
            ("GET", f"/api/conversations/{conversation}/events", None),
            ("GET", "/api/conversations", None),
            ("POST", "/api/chat/ticket", {}),
        ]
        while not self.stop.is_set():
            method, path, body = calls[self.done % len(calls)]
            status, _, answer = http_json(
                method, self.base + path, body, self.person.headers(), timeout=15
            )
            ok = 200 <= status < 300
            detail = "" if ok else str((answer or {}).get("error", {}).get("code", "no answer"))
            self.history.request(self.client, f"{method} {path.split('/')[2]}", status, ok, detail)
            self.done += 1
            time.sleep(0.02)


def run(settings: Settings, workdir: Path, params: Params = Params()) -> Result:
    settings = chaos_settings(settings)
    env = child_env(settings)
    path = workdir / f"{NAME}.jsonl"
    history = History(path)
    webs: list[WebInstance] = []
    proxy = None
    followers = []
    loaders: list[Loader] = []
    try:
        webs = together(lambda: start_web(workdir, env), lambda: start_web(workdir, env))
        proxy = start_nginx(workdir, [web.port for web in webs])
        person = make_person(settings, params.conversations)
        followers = start_followers(
            proxy.base, person, history, websockets=params.websockets, sse=True
        )
        loaders = [Loader(f"load{n}", proxy.base, person, history) for n in range(params.loaders)]
        for loader in loaders:
            loader.start()
        producer = Producer(settings, person, history, params.deliveries, params.rate, direct=True)
        producer.start()
        shutdown_seconds: list[float] = []
        time.sleep(params.pause)
        for slot, web in enumerate(webs):
            history.fault("sigterm", f"web-{slot}", pid=web.process.pid)
            started = time.monotonic()
            code = web.stop(signal.SIGTERM)
            shutdown_seconds.append(round(time.monotonic() - started, 1))
            webs[slot] = start_web(workdir, env, port=web.port)
            history.fault("restart", f"web-{slot}", exit_code=code)
            time.sleep(params.pause)
        mid_traffic = producer.is_alive()
        producer.stop.set()
        producer.join(30)
        settled = wait_all_received(producer, followers, settings, params.settle_timeout)
        for loader in loaders:
            loader.stop.set()
        for loader in loaders:
            loader.join(20)
        stop_all(followers)
        figures = {
            "deliveries": producer.produced,
            "acked": sum(len(m) for m in producer.acked.values()),
            "requests through nginx": sum(loader.done for loader in loaders),
            "instances restarted": len(webs),
            "shutdown seconds (each)": shutdown_seconds,
            "client reconnects": sum(f.connects - 1 for f in followers),
            "all received after s": round(settled, 1),
        }
        problems = [f"{f.client} never resumed" for f in followers if f.connects < 2]
        if not mid_traffic:
            problems.append("the deliveries ended before both restarts did")
    finally:
        for loader in loaders:
            loader.stop.set()
        stop_all(followers)
        if proxy is not None:
            proxy.stop()
        for web in webs:
            web.stop()
        history.close()
    return judge(NAME, path, figures, problems)
