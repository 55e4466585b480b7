"""deploy/alertmanager: the template rendered by render.sh, checked by amtool, routed by
severity, and its inhibition proven on a real Alertmanager (Debian's binary)."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from devtools.servers import free_port
from tests.deploy.tools import DEPLOY, tool

AM = DEPLOY / "alertmanager"
ENV = {
    "MAILCHAT_ALERT_PAGER_WEBHOOK_URL": "https://pager.example/hook?key=a&b|c",
    "MAILCHAT_ALERT_TICKET_WEBHOOK_URL": "https://tickets.example/hook",
}


def render(tmp_path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    out = tmp_path / "alertmanager.yml"
    full = {
        "PATH": os.environ["PATH"],
        "ALERTMANAGER_TEMPLATE": str(AM / "alertmanager.yml"),
        "ALERTMANAGER_CONFIG": str(out),
        **(ENV if env is None else env),
    }
    return subprocess.run(
        ["sh", str(AM / "render.sh"), "true"], env=full, capture_output=True, text=True, timeout=10
    )


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    result = render(tmp_path)
    assert result.returncode == 0, result.stderr
    return tmp_path / "alertmanager.yml"


def test_render_fills_receivers_from_the_environment(config: Path) -> None:
    text = config.read_text()
    assert "${" not in text
    assert "url: 'https://pager.example/hook?key=a&b|c'" in text
    assert "url: 'https://tickets.example/hook'" in text


def test_render_refuses_a_missing_receiver(tmp_path: Path) -> None:
    result = render(tmp_path, {"MAILCHAT_ALERT_PAGER_WEBHOOK_URL": "https://x.example"})
    assert result.returncode == 64
    assert "MAILCHAT_ALERT_TICKET_WEBHOOK_URL is not set" in result.stderr


@pytest.mark.timeout(30)
def test_amtool_check_config(config: Path) -> None:
    result = subprocess.run(
        [tool("amtool"), "check-config", str(config)], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 inhibit rules" in result.stdout and "2 receivers" in result.stdout


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=page", "slo=chat_latency"], "pager"),
        (["severity=critical", "alertname=ReadinessFailing"], "pager"),
        (["severity=ticket", "slo=chat_latency"], "tickets"),
        (["severity=warning", "alertname=QueueBacklog"], "tickets"),
        (["alertname=Unlabelled"], "tickets"),
    ],
)
def test_amtool_routes_each_severity(config: Path, labels: list[str], receiver: str) -> None:
    amtool = tool("amtool")
    result = subprocess.run(
        [amtool, "config", "routes", "test", f"--config.file={config}", *labels],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == receiver
    verified = subprocess.run(
        [
            amtool,
            "config",
            "routes",
            "test",
            f"--config.file={config}",
            f"--verify.receivers={receiver}",
            *labels,
        ],
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr


def _api(base: str, path: str, body: object = None) -> object:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{base}{path}", data=data, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        raw = response.read()
        if response.headers.get_content_type() != "application/json":
            return raw.decode()  # /-/ready answers plain text
        return json.loads(raw) if raw else None


@pytest.mark.timeout(60)
def test_a_page_inhibits_its_ticket_on_a_real_alertmanager(config: Path, tmp_path: Path) -> None:
    binary = tool("prometheus-alertmanager")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "alertmanager.log", "wb"),  # noqa: SIM115
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                _api(base, "/-/ready")
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError((tmp_path / "alertmanager.log").read_text()) from None
                time.sleep(0.2)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        alerts = [
            {
                "labels": {
                    "alertname": "ChatResponseTimeBudgetBurnFast",
                    "severity": "page",
                    "slo": "chat_latency",
                }
            },
            {
                "labels": {
                    "alertname": "ChatResponseTimeBudgetBurnSlow",
                    "severity": "ticket",
                    "slo": "chat_latency",
                }
            },
            {
                "labels": {
                    "alertname": "HttpErrorRateBudgetBurnSlow",
                    "severity": "ticket",
                    "slo": "http_errors",
                }
            },
            {"labels": {"alertname": "WebSocketAbnormalCloses", "severity": "critical"}},
            {"labels": {"alertname": "WebSocketAbnormalCloses", "severity": "warning"}},
        ]
        _api(base, "/api/v2/alerts", [{**alert, "startsAt": now} for alert in alerts])
        deadline = time.monotonic() + 20
        while True:
            listed = _api(base, "/api/v2/alerts")
            assert isinstance(listed, list)
            state = {
                (a["labels"]["alertname"], a["labels"]["severity"]): a["status"]["inhibitedBy"]
                for a in listed
            }
            if len(state) == len(alerts) and any(state.values()):
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.3)
        assert state[("ChatResponseTimeBudgetBurnSlow", "ticket")], "a page silences its ticket"
        assert not state[("ChatResponseTimeBudgetBurnFast", "page")]
        assert not state[("HttpErrorRateBudgetBurnSlow", "ticket")], "another SLO's ticket stays"
        assert state[("WebSocketAbnormalCloses", "warning")], "critical silences its warning"
        assert not state[("WebSocketAbnormalCloses", "critical")]
    finally:
        process.terminate()
        process.wait(10)
