"""deploy/grafana: every dashboard panel's PromQL returns data from a real Prometheus.

A real ``prometheus`` (Debian's package) scrapes a real gunicorn's /metrics and
the Celery worker's own /metrics port every second, with deploy/prometheus's
rule files loaded (their group interval shortened to 1 s). After real
traffic — chat over JSON, SSE and the WebSocket, a WebSocket refused for
overload, a 429, an IMAP sync against Dovecot and beat's sync_all — every
panel's query is evaluated through Prometheus' HTTP API and must return data.
Web and worker use their own Redis database so no other worker of the session
takes their tasks.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from devtools import dashboards
from devtools.servers import free_port
from shared.core.clients import get_redis
from shared.identity.users import issue_token
from tests.conftest import user_with_mailbox
from tests.deploy.tools import DEPLOY, tool
from tests.live import SseReader, http, start_web, start_worker
from tests.sync.test_imap import Mailbox, make_message
from tests.wsclient import WsClient

RATE_WINDOW = "1m"  # stands in for Grafana's $__rate_interval


def test_dashboard_files_are_up_to_date() -> None:
    for path, text in dashboards.rendered().items():
        assert path.read_text() == text, f"{path} is stale: run python -m devtools.dashboards"


def test_provisioning_points_at_the_dashboards() -> None:
    import yaml

    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    assert datasource["datasources"][0]["uid"] == dashboards.DATASOURCE["uid"]
    provider = yaml.safe_load((provisioning / "dashboards" / "mailchat.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    uids = {json.loads(p.read_text())["uid"] for p in dashboards.DASHBOARD_DIR.glob("*.json")}
    assert "applylens-assistant-windows" in uids and len(uids) == 5
    seed = json.loads((dashboards.DASHBOARD_DIR / "applylens-assistant-windows.json").read_text())
    assert len(seed["panels"]) == 7


def panel_queries() -> list[tuple[str, str, str]]:
    """(dashboard uid, panel title, PromQL) for every target of every panel."""
    found = []
    for path in sorted(dashboards.DASHBOARD_DIR.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = target["expr"].replace("$__rate_interval", RATE_WINDOW)
                found.append((board["uid"], panel["title"], expr))
    return found


def _get(url: str, timeout: float = 5) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def start_prometheus(tmp: Path, targets: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    rules = []
    for path in sorted((DEPLOY / "prometheus").glob("*.rules.yml")):
        fast = tmp / path.name
        fast.write_text(path.read_text().replace("interval: 30s", "interval: 1s"))
        rules.append(str(fast))
    scrape = [
        {"job_name": job, "scrape_interval": "1s", "static_configs": [{"targets": [target]}]}
        for job, target in targets.items()
    ]
    config = tmp / "prometheus.yml"
    config.write_text(
        json.dumps(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": rules,
                "scrape_configs": scrape,
            }
        )
    )
    port = free_port()
    log = open(tmp / "prometheus.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [
            tool("prometheus"),
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=1):
                return process, base
        except OSError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                raise RuntimeError((tmp / "prometheus.log").read_text()[-3000:]) from None
            time.sleep(0.2)


def real_traffic(web_base: str, settings: Any, user: Any, mailbox: Mailbox) -> None:
    headers = {"Authorization": f"Bearer {issue_token(settings, user)}"}
    # What a load balancer probes (each gunicorn worker keeps its own checks).
    for _ in range(4):
        http("GET", f"{web_base}/readyz")
    assert http("POST", f"{web_base}/api/ux/chat/opened", None, headers)[0] == 204
    # JSON chat: one question that finds mail, one that cannot.
    for question, days in (("invoices and receipts", 120), ("zqxj vlorpt kwyz", 7)):
        status, _, body = http(
            "POST", f"{web_base}/api/chat", {"q": question, "window_days": days}, headers
        )
        assert status == 200, body
    # SSE.
    status, _, body = http("POST", f"{web_base}/api/chat/ticket", {}, headers)
    ticket = json.loads(body)["ticket"]
    reader = SseReader(f"{web_base}/api/chat/stream?q=interviews&window_days=60&ticket={ticket}")
    for message in reader.messages():
        if message["event"] in ("done", "error"):
            break
    reader.close()
    # WebSocket: a conversation, then sockets past the per-process limit (1 here) get
    # advice + 1013, then a normal close.
    first = WsClient(web_base, "http://allowed.example")
    first.send({"type": "auth", "token": issue_token(settings, user)})
    assert (first.receive() or {}).get("type") == "ready"
    cmid = "m_" + secrets.token_hex(6)
    first.send({"type": "chat.send", "client_message_id": cmid, "q": "offer", "window_days": 120})
    first.receive_until(
        lambda f: f.get("type") == "done" and f["data"].get("client_message_id") == cmid
    )
    extra = [WsClient(web_base, "http://allowed.example") for _ in range(2)]
    for client in extra:
        client.send({"type": "auth", "token": issue_token(settings, user)})
    codes = [client.wait_closed(timeout=3) for client in extra]
    first.close()
    for client in extra:
        client.close()
    assert 1013 in codes, codes
    # 429: the UX endpoints allow 2 a minute here.
    statuses = [http("POST", f"{web_base}/api/ux/heartbeat", None, headers)[0] for _ in range(3)]
    assert statuses[-1] == 429, statuses
    # A sync: an IMAP account on Dovecot, synced by the worker; then beat's sync_all.
    mailbox.append("INBOX", make_message("Your invoice", f"{secrets.token_hex(6)}@example.com"))
    account = {
        "provider": "imap",
        "host": mailbox.server.host,
        "port": mailbox.server.port,
        "username": mailbox.username,
        "password": mailbox.server.password,
        "tls": False,
    }
    status, _, body = http("POST", f"{web_base}/api/accounts", account, headers)
    assert status in (200, 201, 202), body
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        listed = json.loads(http("GET", f"{web_base}/api/accounts", None, headers)[2])["accounts"]
        if listed and listed[0].get("last_success_at"):
            break
        time.sleep(0.3)
    else:
        raise AssertionError(f"the IMAP sync did not finish: {listed}")
    from celery_app import create_celery
    from shared.core.task_names import MAIL_SYNC_ALL

    create_celery(settings, with_tasks=False).send_task(MAIL_SYNC_ALL)


@pytest.mark.timeout(120)
def test_every_panel_returns_data_from_a_real_prometheus(settings, dovecot, tmp_path) -> None:
    own = dataclasses.replace(settings, redis_url=settings.redis_url.rsplit("/", 1)[0] + "/10")
    shared_env = {"MAILCHAT_REDIS_URL": own.redis_url, "MAILCHAT_IMAP_ALLOW_PRIVATE_HOSTS": "true"}
    worker_port = free_port()
    worker_dir, web_dir = tmp_path / "worker-metrics", tmp_path / "web-metrics"
    web_dir.mkdir()
    worker_dir.mkdir()  # prometheus_client needs it before the worker imports its metrics
    worker_env = {
        **os.environ,
        **shared_env,
        "PROMETHEUS_MULTIPROC_DIR": str(worker_dir),
        "MAILCHAT_WORKER_METRICS_PORT": str(worker_port),
    }
    worker = start_worker(own, tmp_path / "worker.log", worker_env, concurrency=2)
    web = None
    prometheus = None
    mailbox = Mailbox(dovecot)
    try:
        web = start_web(
            tmp_path,
            {
                **shared_env,
                "PROMETHEUS_MULTIPROC_DIR": str(web_dir),
                "MAILCHAT_WS_MAX_CONNECTIONS": "1",
                "MAILCHAT_UX_RATE_LIMIT_PER_MINUTE": "2",
            },
            workers=2,
        )
        prometheus, prom = start_prometheus(
            tmp_path,
            {
                "mailchat-web": f"127.0.0.1:{web.port}",
                "mailchat-worker": f"127.0.0.1:{worker_port}",
            },
        )
        user = user_with_mailbox(own, tmp_path, name="panels", count=60)
        time.sleep(2)  # a few scrapes before the traffic, so rates have a starting point
        real_traffic(web.base, own, user, mailbox)
        time.sleep(3)  # scrapes after it
        for target in _get(f"{prom}/api/v1/targets")["data"]["activeTargets"]:
            assert target["health"] == "up", target
        missing: list[str] = []
        deadline = time.monotonic() + 20
        queries = panel_queries()
        while True:
            missing = []
            for uid, title, expr in queries:
                url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
                answer = _get(url)
                assert answer["status"] == "success", (uid, title, expr, answer)
                if not answer["data"]["result"]:
                    missing.append(f"{uid} / {title}: {expr}")
            if not missing or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert not missing, "panels without data:\n" + "\n".join(missing)
        print(f"{len(queries)} panel queries returned data")
    finally:
        mailbox.close()
        if prometheus is not None:
            prometheus.terminate()
            prometheus.wait(10)
        if web is not None:
            web.stop()
        worker.terminate()
        try:
            worker.wait(20)
        except subprocess.TimeoutExpired:
            worker.kill()
        get_redis(own).flushdb()  # database 10 belongs to this test only
