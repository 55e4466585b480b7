"""Generate the SLO recording rules, burn-rate alerts and their promtool tests.

Five SLOs times five windows times two alerts is mechanical, and a typo in
one copy would go unnoticed, so one table below is the source and this module
writes ``deploy/prometheus/slo.rules.yml`` plus the promtool unit tests in
``tests/deploy/promtool/``. ``python -m devtools.slo_rules`` rewrites them;
``tests/deploy/test_prometheus_rules.py`` fails when the files drift from the table.

The alerts are the multiwindow, multi-burn-rate ones of Google's SRE workbook:
page when the budget burns 14.4x over 1 h (and 5 m) or 6x over 6 h (and
30 m); ticket at 1x over 3 d (and 6 h). The short window makes an alert
resolve minutes after the errors stop.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
RULES_PATH = ROOT / "deploy" / "prometheus" / "slo.rules.yml"
FAST_TEST_PATH = ROOT / "tests" / "deploy" / "promtool" / "slo_fast.test.yml"
SLOW_TEST_PATH = ROOT / "tests" / "deploy" / "promtool" / "slo_slow.test.yml"

WINDOWS = ("5m", "30m", "1h", "6h", "3d")
PAGE = ((14.4, "1h", "5m"), (6.0, "6h", "30m"))
TICKET = (1.0, "3d", "6h")


@dataclass(frozen=True)
class Slo:
    """One objective. Errors are ``bad / total``, or ``1 - good / total`` for latency SLOs."""

    name: str
    alert: str
    objective: float
    description: str
    total: str
    bad: str = ""
    good: str = ""
    # Test inputs: series (with labels) standing for bad/good events and the total.
    test_bad: str = ""
    test_good: str = ""
    test_total: str = ""

    @property
    def budget(self) -> float:
        return round(1 - self.objective, 6)

    def error_ratio(self, window: str) -> str:
        total = f"sum(rate({self.total}[{window}]))"
        if self.bad:
            return f"sum(rate({self.bad}[{window}])) / {total}"
        return f"1 - sum(rate({self.good}[{window}])) / {total}"


SLOS = (
    Slo(
        name="chat_latency",
        alert="ChatResponseTime",
        objective=0.95,
        description="95 % of POST /api/chat answered within 2 s",
        good='flask_http_request_duration_seconds_bucket{endpoint="chat.chat",method="POST",le="2.0"}',
        total='flask_http_request_duration_seconds_count{endpoint="chat.chat",method="POST"}',
        test_good='flask_http_request_duration_seconds_bucket{endpoint="chat.chat",method="POST",status="200",le="2.0"}',
        test_total='flask_http_request_duration_seconds_count{endpoint="chat.chat",method="POST",status="200"}',
    ),
    Slo(
        name="ws_availability",
        alert="WebSocketAvailability",
        objective=0.995,
        description="99.5 % of WebSocket sessions end without 1006/1011/1013",
        bad='ws_closes_total{code=~"1006|1011|1013"}',
        total="ws_closes_total",
        test_bad='ws_closes_total{code="1011",reason="internal"}',
        test_good='ws_closes_total{code="1000",reason="normal"}',
    ),
    Slo(
        name="http_errors",
        alert="HttpErrorRate",
        objective=0.999,
        description="fewer than 0.1 % of HTTP requests answer 5xx",
        bad='flask_http_request_total{status=~"5.."}',
        total="flask_http_request_total",
        test_bad='flask_http_request_total{method="GET",status="503"}',
        test_good='flask_http_request_total{method="GET",status="200"}',
    ),
    Slo(
        name="es_latency",
        alert="ElasticsearchQueryTime",
        objective=0.95,
        description="95 % of the assistant's Elasticsearch queries within 500 ms",
        good='assistant_elasticsearch_duration_seconds_bucket{le="0.5"}',
        total="assistant_elasticsearch_duration_seconds_count",
        test_good='assistant_elasticsearch_duration_seconds_bucket{le="0.5"}',
        test_total="assistant_elasticsearch_duration_seconds_count",
    ),
    Slo(
        name="task_completion",
        alert="TaskCompletion",
        objective=0.90,
        description="90 % of Celery tasks succeed within 30 s",
        good='celery_task_runtime_seconds_bucket{le="30.0"}',
        total='celery_tasks_total{state=~"succeeded|failed"}',
        test_good='celery_task_runtime_seconds_bucket{task="mail.sync_account",le="30.0"}',
        test_total='celery_tasks_total{task="mail.sync_account",state="succeeded"}',
    ),
)


def ratio_name(window: str) -> str:
    return f"slo:error_ratio:rate{window}"


def _fmt(value: float) -> str:
    return f"{value:.6g}"


def rules() -> dict[str, Any]:
    recording: list[dict[str, Any]] = []
    alerts: list[dict[str, Any]] = []
    for slo in SLOS:
        labels = {"slo": slo.name}
        recording.append(
            {"record": "slo:error_budget:ratio", "expr": _fmt(slo.budget), "labels": labels}
        )
        for window in WINDOWS:
            recording.append(
                {"record": ratio_name(window), "expr": slo.error_ratio(window), "labels": labels}
            )
        recording.append(
            {
                "record": "slo:error_budget_remaining:ratio3d",
                "expr": f'1 - {ratio_name("3d")}{{slo="{slo.name}"}} / {_fmt(slo.budget)}',
                "labels": labels,
            }
        )
        sel = f'{{slo="{slo.name}"}}'
        page = " or ".join(
            f"({ratio_name(long)}{sel} > {_fmt(factor * slo.budget)}"
            f" and {ratio_name(short)}{sel} > {_fmt(factor * slo.budget)})"
            for factor, long, short in PAGE
        )
        factor, long, short = TICKET
        ticket = (
            f"{ratio_name(long)}{sel} > {_fmt(factor * slo.budget)}"
            f" and {ratio_name(short)}{sel} > {_fmt(factor * slo.budget)}"
        )
        alerts.append(
            {
                "alert": f"{slo.alert}BudgetBurnFast",
                "expr": page,
                "for": "2m",
                "labels": {"severity": "page", "slo": slo.name},
                "annotations": {
                    "summary": f"SLO {slo.name} ({slo.description}): budget burning fast",
                    "description": "At this rate the error budget is gone within days "
                    "(14.4x over 1 h or 6x over 6 h).",
                },
            }
        )
        alerts.append(
            {
                "alert": f"{slo.alert}BudgetBurnSlow",
                "expr": ticket,
                "for": "1h",
                "labels": {"severity": "ticket", "slo": slo.name},
                "annotations": {
                    "summary": f"SLO {slo.name} ({slo.description}): budget burning",
                    "description": "The error budget burns faster than it refills (1x over 3 d).",
                },
            }
        )
    # One group: Prometheus evaluates a group's rules in order, so each alert reads the
    # ratios recorded in the same evaluation. As two groups, which one ran first at a step
    # was not fixed (promtool's unit tests then failed ~2 runs in 15, an alert's `for`
    # starting one evaluation late), and a real server could judge one step stale.
    return {"groups": [{"name": "mailchat-slo", "interval": "30s", "rules": recording + alerts}]}


def counter(segments: list[tuple[float, int]]) -> str:
    """promtool series notation for a counter growing ``per_step`` for ``steps`` steps each."""
    parts: list[str] = []
    value = 0.0
    for number, (per_step, steps) in enumerate(segments):
        if number == 0:
            parts.append(f"0+{_fmt(per_step)}x{steps}")
            value = per_step * steps
        else:
            value += per_step
            parts.append(f"{_fmt(value)}+{_fmt(per_step)}x{steps - 1}")
            value += per_step * (steps - 1)
    return " ".join(parts)


def series(slo: Slo, per_step_total: float, plan: list[tuple[float, int]]) -> list[dict[str, str]]:
    """Input series for an error ratio following ``plan``: (ratio, steps) segments."""
    bad = [(per_step_total * ratio, steps) for ratio, steps in plan]
    good = [(per_step_total * (1 - ratio), steps) for ratio, steps in plan]
    total = [(per_step_total, steps) for _, steps in plan]
    if slo.bad:
        return [
            {"series": slo.test_bad, "values": counter(bad)},
            {"series": slo.test_good, "values": counter(good)},
        ]
    return [
        {"series": slo.test_good, "values": counter(good)},
        {"series": slo.test_total, "values": counter(total)},
    ]


def _annotations(alertname: str) -> dict[str, str]:
    for group in rules()["groups"]:
        for rule in group["rules"]:
            if rule.get("alert") == alertname:
                return dict(rule["annotations"])
    raise KeyError(alertname)


def _alert(slo: Slo, kind: str, minutes: int, firing: bool) -> dict[str, Any]:
    severity = "page" if kind == "Fast" else "ticket"
    alertname = f"{slo.alert}BudgetBurn{kind}"
    expected = (
        [
            {
                "exp_labels": {"severity": severity, "slo": slo.name},
                "exp_annotations": _annotations(alertname),
            }
        ]
        if firing
        else []
    )
    return {"eval_time": f"{minutes}m", "alertname": alertname, "exp_alerts": expected}


def _test_file(interval: str, groups: list[dict[str, Any]]) -> dict[str, Any]:
    # promtool reads rule_files relative to the test file.
    return {
        "rule_files": ["../../../deploy/prometheus/slo.rules.yml"],
        "evaluation_interval": interval,
        "tests": groups,
    }


def fast_tests() -> dict[str, Any]:
    """Page alerts, 2-minute samples: each path fires just above its factor, not just below,
    and resolves once the errors stop. Every SLO's series go in the same group (their
    metrics differ), which keeps promtool's run short."""
    groups: list[dict[str, Any]] = []
    step = 2  # minutes per sample
    for factor, long, _short in PAGE:
        if long == "1h":
            # 6 h of clean traffic first, so the 6 h window stays under 6x.
            lead, spike, after = 180, 36, 6
        else:
            lead, spike, after = 0, 200, 20
        end = (lead + spike) * step
        above_series: list[dict[str, str]] = []
        below_series: list[dict[str, str]] = []
        above_tests: list[dict[str, Any]] = []
        below_tests: list[dict[str, Any]] = []
        for slo in SLOS:
            threshold = factor * slo.budget
            if threshold * 1.1 >= 1:
                continue  # 14.4x a 10 % budget is over 100 % errors: that path cannot fire
            clean = [(0.0, lead)] if lead else []
            above_series += series(slo, 2000, [*clean, (threshold * 1.1, spike), (0.0, after)])
            below_series += series(slo, 2000, [*clean, (threshold * 0.95, spike)])
            above_tests += [
                _alert(slo, "Fast", end, True),
                _alert(slo, "Fast", end + after * step, False),
            ]
            below_tests.append(_alert(slo, "Fast", end, False))
        name = f"{factor}x over {long}"
        groups.append(
            {
                "name": f"{name}: fires just above the threshold, then resolves",
                "interval": f"{step}m",
                "input_series": above_series,
                "alert_rule_test": above_tests,
            }
        )
        groups.append(
            {
                "name": f"{name}: stays quiet just below the threshold",
                "interval": f"{step}m",
                "input_series": below_series,
                "alert_rule_test": below_tests,
            }
        )
    return _test_file(f"{step}m", groups)


def slow_tests() -> dict[str, Any]:
    """Ticket alerts, 15-minute samples over 3 days."""
    step, three_days, after = 15, 288, 28  # 3 d, then 7 h without errors
    end = three_days * step
    above: list[dict[str, str]] = []
    below: list[dict[str, str]] = []
    for slo in SLOS:
        above += series(slo, 1000, [(slo.budget * 1.2, three_days), (0.0, after)])
        below += series(slo, 1000, [(slo.budget * 0.9, three_days)])
    groups = [
        {
            "name": "1x over 3 d: fires just above the budget, then resolves",
            "interval": f"{step}m",
            "input_series": above,
            "alert_rule_test": [
                test
                for slo in SLOS
                for test in (
                    _alert(slo, "Slow", end, True),
                    _alert(slo, "Slow", end + after * step, False),
                )
            ],
        },
        {
            "name": "1x over 3 d: stays quiet just below the budget",
            "interval": f"{step}m",
            "input_series": below,
            "alert_rule_test": [_alert(slo, "Slow", end, False) for slo in SLOS],
        },
    ]
    return _test_file(f"{step}m", groups)


class _PlainDumper(yaml.SafeDumper):
    """Writes repeated label maps out in full: no YAML anchors in files people read."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


HEADER = "# Generated by `python -m devtools.slo_rules` from its SLOS table; do not edit.\n"


def rendered() -> dict[Path, str]:
    def dump(data: dict[str, Any]) -> str:
        return HEADER + yaml.dump(data, Dumper=_PlainDumper, sort_keys=False, width=100)

    return {
        RULES_PATH: dump(rules()),
        FAST_TEST_PATH: dump(fast_tests()),
        SLOW_TEST_PATH: dump(slow_tests()),
    }


def main() -> int:
    for path, text in rendered().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
