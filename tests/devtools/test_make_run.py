"""`make run`'s contract: the whole system from one command, on free local servers.

Runs ``python -m devtools.run`` (what ``make run`` runs) with a fresh data dir
and no server URLs: it must start redis-server and noida-db itself, import the
demo mailbox, and serve a login and a cited answer within 60 s; Ctrl-C must
stop every process; a second start must find the data again. And one crashed
process must not stop the others: ``kill -9`` of a worker, beat and Flower
gets each restarted while web keeps serving, and the question the worker was
answering is redelivered and answered.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from devtools.servers import free_port
from tests.conftest import PROJECT_ROOT

START_BUDGET_SECONDS = 60


def http(  # type: ignore[no-untyped-def]
    method: str,
    url: str,
    body: dict | None = None,
    token: str | None = None,
    basic: str | None = None,
    timeout: float = 20,
):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if basic:
        headers["Authorization"] = "Basic " + base64.b64encode(basic.encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
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
    data_dir: Path,
    web_port: int,
    flower_port: int,
    log_path: Path,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MAILCHAT_", "PROMETHEUS_", "FLOWER_"))
    }
    env.update(
        MAILCHAT_DATA_DIR=str(data_dir),
        MAILCHAT_WEB_PORT=str(web_port),
        MAILCHAT_FLOWER_PORT=str(flower_port),
        MAILCHAT_WORKER_CONCURRENCY="1",
        **(extra_env or {}),
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
        flower = f"http://127.0.0.1:{flower_port}/"
        assert http("GET", flower)[0] == 401, "Flower must not be open to anybody"
        login = (data_dir / "flower_basic_auth").read_text()
        assert http("GET", flower, basic=login)[0] == 200, "Flower is not serving"
        assert login.replace(":", " / ", 1) in log_path.read_text(), "make run prints the login"
        assert login not in " ".join(_cmdlines()), "the Flower password is on a command line"
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


# -- one crashed process does not stop the others (issue 10, items 3 and 18) ----------------


def _cmdlines() -> list[str]:
    return [" ".join(argv) for argv, _ppid in _processes().values()]


def _processes() -> dict[int, tuple[list[str], int]]:
    """Every process of this machine: pid -> (argv, parent pid), read from /proc."""
    found: dict[int, tuple[list[str], int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                argv = [
                    part.decode(errors="replace") for part in handle.read().split(b"\0") if part
                ]
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry)] = (argv, parent)
    return found


def main_processes(data_dir: Path, *markers: str) -> list[int]:
    """Pids of this run's processes with an argument starting with each marker, minus forks.

    This run's processes carry its data dir in their environment. A prefork
    pool child or a gunicorn worker has its parent's command line; the main
    process is the one whose parent is not itself a match.
    """
    everything = _processes()
    matches = {
        pid
        for pid, (argv, _parent) in everything.items()
        if all(any(arg.startswith(marker) for arg in argv) for marker in markers)
        and _in_run(pid, data_dir)
    }
    return sorted(pid for pid in matches if everything[pid][1] not in matches)


def _in_run(pid: int, data_dir: Path) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return f"MAILCHAT_DATA_DIR={data_dir}".encode() in handle.read().split(b"\0")
    except OSError:
        return False


def children(pid: int) -> list[int]:
    return sorted(child for child, (_argv, parent) in _processes().items() if parent == pid)


def wait_for(what: str, check, timeout: float) -> object:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout:.0f}s")


@pytest.mark.timeout(150)
def test_kill_9_of_a_worker_beat_and_flower_restarts_them_and_the_question_is_answered(
    tmp_path: Path,
) -> None:
    """Under honcho, kill -9 of the worker stopped web, beat and Flower and answered nothing.

    The answer is caught in flight for certain: the search worker's pool
    process is frozen (SIGSTOP) before the question is asked, so the worker's
    main process has taken the message from the broker but not run it when it
    is killed. Its pool child dies with it (PDEATHSIG). The question is then
    redelivered after the search queue's short visibility timeout and answered
    by the restarted worker, while the POST that asked it is still waiting.
    """
    data_dir = tmp_path / "data"
    web_port, flower_port = free_port(), free_port()
    base = f"http://127.0.0.1:{web_port}"
    log_path = tmp_path / "run.log"
    lease = 5  # the search visibility timeout; the default (60 s) is tested in test_celery_app
    process = start(
        data_dir,
        web_port,
        flower_port,
        log_path,
        {
            "MAILCHAT_DEMO_MESSAGE_COUNT": "200",
            "MAILCHAT_SEARCH_VISIBILITY_TIMEOUT_SECONDS": str(lease),
            # The question's task must still be unexpired when it is redelivered.
            "MAILCHAT_CHAT_TIMEOUT_SECONDS": "40",
        },
    )
    try:
        wait_ready(base, process, time.monotonic() + START_BUDGET_SECONDS)
        worker = wait_for(
            "the search worker is up",
            lambda: main_processes(data_dir, "worker", "--queues=search"),
            30,
        )[0]  # type: ignore[index]
        pool = wait_for("its pool process", lambda: children(worker), 30)
        beat = main_processes(data_dir, "celery_app", "beat")
        flower = main_processes(data_dir, "celery_app", "flower")
        assert len(beat) == 1 and len(flower) == 1, (beat, flower)

        status, body = http(
            "POST",
            f"{base}/api/auth/login",
            {"email": "demo@example.com", "password": "mailchat-demo"},
        )
        assert status == 200, body
        token = json.loads(body)["access_token"]
        for child in pool:  # type: ignore[attr-defined]
            os.kill(child, signal.SIGSTOP)
        replies: list[tuple[int, bytes]] = []
        asking = threading.Thread(
            target=lambda: replies.append(
                http(
                    "POST",
                    f"{base}/api/chat",
                    {"q": "interviews in the last 30 days", "client_message_id": "m_crash1"},
                    token,
                    timeout=60,
                )
            )
        )
        asking.start()
        # The worker's main process takes the question from the broker (the frozen child
        # cannot run it). Asserted after the kill: a worker on every queue (honcho's) may
        # have handed its frozen child a beat task first, and then must still fail below.
        deadline = time.monotonic() + 20
        while "assistant.answer[" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        taken = "assistant.answer[" in log_path.read_text()
        killed_at = time.monotonic()
        for pid in (worker, beat[0], flower[0]):
            os.kill(pid, signal.SIGKILL)
        wait_for(
            "the frozen pool child dies with its worker",
            lambda: not any(pid in _processes() for pid in pool),  # type: ignore[attr-defined]
            10,
        )

        # The rest keeps serving while the dead come back.
        def restarted() -> bool:
            assert process.poll() is None, "make run exited"
            try:
                assert http("GET", f"{base}/healthz")[0] == 200, "web stopped serving"
                status, body = http("GET", f"{base}/readyz")
            except OSError as exc:
                pytest.fail(f"web stopped serving: {exc}")
            # Readiness may name the Celery check while workers come back; nothing else fails.
            if status != 200:
                checks = json.loads(body)["checks"]
                failing = {name for name, check in checks.items() if check["status"] != "ok"}
                assert failing <= {"celery"}, f"readiness failed beyond the workers: {checks}"
            now = (
                main_processes(data_dir, "worker", "--queues=search"),
                main_processes(data_dir, "celery_app", "beat"),
                main_processes(data_dir, "celery_app", "flower"),
            )
            return all(len(p) == 1 for p in now) and not {worker, beat[0], flower[0]} & {
                p[0] for p in now
            }

        wait_for("worker, beat and Flower restarted", restarted, 30)
        assert taken, "the worker never took the question, so the kill interrupted nothing"
        asking.join(timeout=50)
        answered_after = time.monotonic() - killed_at
        assert replies, "the question was never answered"
        status, body = replies[0]
        assert status == 200, body
        answer = json.loads(body)
        assert answer["citations"] and answer["search"]["total_hits"] > 0
        # Redelivered after the lease and a sweep (every min(10, lease) s), not after an hour.
        assert answered_after < lease + 30, f"answered {answered_after:.0f}s after the kill"
        print(f"answered {answered_after:.1f}s after kill -9 of its worker")  # noqa: T201

        # Flower is back, with its login; the rest of the log says who was restarted.
        login = (data_dir / "flower_basic_auth").read_text()
        flower_url = f"http://127.0.0.1:{flower_port}/"
        wait_for("Flower serves again", lambda: http("GET", flower_url, basic=login)[0] == 200, 30)
        output = log_path.read_text()
        for name in ("search-worker", "beat", "flower"):
            assert f"exited: {name} (terminated by SIGKILL; not expected)" in output, name
        # Exactly one answer: the redelivered task continued the same event log.
        conversation = json.loads(http("GET", f"{base}/api/conversations", token=token)[1])
        events = json.loads(
            http(
                "GET",
                f"{base}/api/conversations/{conversation['conversations'][0]['id']}/events",
                token=token,
            )[1]
        )["events"]
        assert [e["type"] for e in events].count("done") == 1, events
    finally:
        code = ctrl_c(process)
    assert code is not None
    leftovers = subprocess.run(
        ["pgrep", "-f", str(data_dir)], capture_output=True, text=True
    ).stdout
    assert leftovers.strip() == "", f"processes survived Ctrl-C: {leftovers}"
