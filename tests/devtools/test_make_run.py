"""`make run`'s contract: the whole system from one command, on free local servers.

Runs ``python -m devtools.run`` (what ``make run`` runs) with a fresh data dir
and no server URLs: it must start redis-server and noida-db itself, import the
demo mailbox, and serve a login and a cited answer within 60 s; Ctrl-C must
stop every process; a second start must find the data again.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devtools.servers import free_port
from tests.conftest import PROJECT_ROOT

START_BUDGET_SECONDS = 60


def http(method: str, url: str, body: dict | None = None, token: str | None = None):  # type: ignore[no-untyped-def]
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_ready(base: str, process: subprocess.Popen[bytes], deadline: float) -> None:
    while time.monotonic() < deadline:
        assert process.poll() is None, "make run exited early"
        try:
            if http("GET", f"{base}/readyz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail("web never became ready")


def start(
    data_dir: Path, web_port: int, flower_port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILCHAT_", "PROMETHEUS_"))}
    env.update(
        MAILCHAT_DATA_DIR=str(data_dir),
        MAILCHAT_WEB_PORT=str(web_port),
        MAILCHAT_FLOWER_PORT=str(flower_port),
        MAILCHAT_WORKER_CONCURRENCY="1",
    )
    with open(log_path, "ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "devtools.run"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so we can press "Ctrl-C" on it
        )


def ctrl_c(process: subprocess.Popen[bytes]) -> int:
    os.killpg(process.pid, signal.SIGINT)
    return process.wait(timeout=60)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def ask_demo(base: str) -> dict:
    status, body = http(
        "POST", f"{base}/api/auth/login", {"email": "demo@example.com", "password": "mailchat-demo"}
    )
    assert status == 200, body
    token = json.loads(body)["access_token"]
    status, body = http("POST", f"{base}/api/chat", {"q": "interviews in the last 30 days"}, token)
    assert status == 200, body
    return json.loads(body)


def test_make_run_serves_a_cited_answer_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    web_port, flower_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    log_path = tmp_path / "run.log"

    started = time.monotonic()
    process = start(data_dir, web_port, flower_port, log_path)
    try:
        wait_ready(base, process, started + START_BUDGET_SECONDS)
        answer = ask_demo(base)
        elapsed = time.monotonic() - started
        assert elapsed < START_BUDGET_SECONDS, f"first cited answer after {elapsed:.0f}s"
        assert answer["search"]["total_hits"] > 0 and answer["citations"]
        assert all(
            "interview" in c["subject"].lower() + c["snippet"].lower() for c in answer["citations"]
        )
        assert http("GET", f"http://127.0.0.1:{flower_port}/")[0] == 200, "Flower is not serving"
        metrics = http("GET", f"{base}/metrics")[1].decode()
        assert 'assistant_tool_queries_total{has_hits="true",window_bucket="30"}' in metrics
        output = log_path.read_text()
        assert "demo@example.com / mailchat-demo" in output
        assert "beat" in output and "worker" in output
    finally:
        code = ctrl_c(process)
    assert code is not None
    time.sleep(1)
    assert not port_open(web_port) and not port_open(flower_port)
    leftovers = subprocess.run(
        ["pgrep", "-f", str(data_dir)], capture_output=True, text=True
    ).stdout
    assert leftovers.strip() == "", f"processes survived Ctrl-C: {leftovers}"

    # Data survives a restart: no re-import, same answer.
    restarted = start(data_dir, web_port, flower_port, log_path)
    try:
        wait_ready(base, restarted, time.monotonic() + START_BUDGET_SECONDS)
        again = ask_demo(base)
        assert again["search"]["total_hits"] == answer["search"]["total_hits"]
        assert "demo mailbox already imported" in log_path.read_text()
    finally:
        ctrl_c(restarted)
