"""deploy/prometheus: rules and config checked by promtool, every alert unit-tested.

The unit tests (tests/deploy/promtool/*.test.yml) show each alert firing just
above its threshold, staying quiet at or below it, and resolving.
"""

from __future__ import annotations

import subprocess

import pytest
import yaml

from devtools import slo_rules
from tests.deploy.tools import DEPLOY, PROJECT_ROOT, tool

RULE_FILES = sorted((DEPLOY / "prometheus").glob("*.rules.yml"))
UNIT_TESTS = sorted((PROJECT_ROOT / "tests" / "deploy" / "promtool").glob("*.test.yml"))


def run(*command: str, cwd=None) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=cwd)


def alerts() -> dict[str, list[dict]]:  # type: ignore[type-arg]
    found: dict[str, list[dict]] = {}  # type: ignore[type-arg]
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    found.setdefault(rule["alert"], []).append(rule)
    return found


@pytest.mark.timeout(60)
def test_promtool_check_config_and_rules() -> None:
    promtool = tool("promtool")
    result = run(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout


@pytest.mark.timeout(120)
@pytest.mark.parametrize("unit_test", UNIT_TESTS, ids=lambda p: p.name)
def test_promtool_unit_tests(unit_test) -> None:  # type: ignore[no-untyped-def]
    promtool = tool("promtool")
    result = run(promtool, "test", "rules", unit_test.name, cwd=unit_test.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for group in yaml.safe_load(path.read_text())["tests"]:
            for case in group.get("alert_rule_test", []):
                (firing if case["exp_alerts"] else quiet).add(case["alertname"])
    names = set(alerts())
    assert names - firing == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown quiet"


def test_the_seed_alert_is_exactly_as_written() -> None:
    """More than 70 % of assistant queries with zero hits over 5 m, for 10 m, warning."""
    (rule,) = alerts()["AssistantLowHitRate"]
    expr = " ".join(rule["expr"].split())
    assert expr == (
        'sum(rate(assistant_tool_queries_total{has_hits="false"}[5m])) '
        "/ sum(rate(assistant_tool_queries_total[5m])) > 0.7"
    )
    assert rule["for"] == "10m" and rule["labels"]["severity"] == "warning"


def test_required_alerts_and_slos_exist() -> None:
    names = set(alerts())
    assert {
        "AssistantLowHitRate",
        "HighRateLimitedRequests",
        "WebSocketAbnormalCloses",
        "DeliveryFailures",
        "DeadLettersGrowing",
        "QueueBacklog",
        "MailSyncLagging",
        "ElasticsearchSlow",
        "ReadinessFailing",
    } <= names
    severities = {r["labels"]["severity"] for r in alerts()["WebSocketAbnormalCloses"]}
    assert severities == {"warning", "critical"}
    objectives = {slo.name: slo.objective for slo in slo_rules.SLOS}
    assert objectives == {
        "chat_latency": 0.95,
        "ws_availability": 0.995,
        "http_errors": 0.999,
        "es_latency": 0.95,
        "task_completion": 0.90,
    }
    for slo in slo_rules.SLOS:
        assert alerts()[f"{slo.alert}BudgetBurnFast"][0]["labels"]["severity"] == "page"
        assert alerts()[f"{slo.alert}BudgetBurnSlow"][0]["labels"]["severity"] == "ticket"


def test_generated_slo_files_are_up_to_date() -> None:
    for path, text in slo_rules.rendered().items():
        assert path.read_text() == text, f"{path} is stale: run python -m devtools.slo_rules"
