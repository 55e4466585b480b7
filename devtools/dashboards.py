"""Generate the Grafana dashboards in ``deploy/grafana/dashboards/`` from one table.

Grafana's JSON is verbose and hand-edited copies drift; the panels below are
the source (title, PromQL, legend, unit), and ``python -m devtools.dashboards``
writes the files. ``tests/deploy/test_dashboards.py`` fails when the files
drift from this table, and evaluates every query against a real Prometheus
that scraped the app and the worker after real traffic.

Queries use Grafana's ``$__rate_interval``; the panel test substitutes a
fixed window.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
R = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    title: str
    targets: tuple[tuple[str, str], ...]  # (PromQL, legend)
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    panels: tuple[Panel, ...]
    tags: tuple[str, ...] = field(default=("mailchat",))


def _quantiles(metric: str, by: str = "le") -> tuple[tuple[str, str], ...]:
    return tuple(
        (f"histogram_quantile({q}, sum by ({by}) (rate({metric}_bucket[{R}])))", f"p{int(q * 100)}")
        for q in (0.5, 0.95, 0.99)
    )


DASHBOARDS = (
    Dashboard(
        uid="applylens-assistant-windows",
        title="Assistant: search windows",
        panels=(
            Panel(
                "Tool queries by window bucket",
                (
                    (
                        f"sum by (window_bucket) (rate(assistant_tool_queries_total[{R}]))",
                        "{{window_bucket}} days",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Zero-hit ratio by window",
                (
                    (
                        f'sum by (window_bucket) (rate(assistant_tool_queries_total{{has_hits="false"}}[{R}]))'
                        f" / sum by (window_bucket) (rate(assistant_tool_queries_total[{R}]))",
                        "{{window_bucket}} days",
                    ),
                ),
                unit="percentunit",
                description="AssistantLowHitRate fires above 70 % over 5 m, for 10 m.",
            ),
            Panel(
                "Hit ratio (last 15 m)",
                (
                    (
                        'sum(increase(assistant_tool_queries_total{has_hits="true"}[15m]))'
                        " / sum(increase(assistant_tool_queries_total[15m]))",
                        "hit ratio",
                    ),
                ),
                unit="percentunit",
                kind="stat",
            ),
            Panel(
                "HTTP 429 rate",
                (
                    (
                        f"sum(rate(http_rate_limited_total[{R}]))"
                        f' or sum(rate(flask_http_request_total{{status="429"}}[{R}]))',
                        "429/s",
                    ),
                ),
                unit="reqps",
            ),
            Panel(
                "Elasticsearch p50 / p95 / p99",
                _quantiles("assistant_elasticsearch_duration_seconds"),
                unit="s",
            ),
            Panel(
                "Active chat sessions",
                (
                    ("sum(ws_connections_active)", "WebSockets"),
                    ("sum(sse_streams_active)", "SSE streams"),
                ),
            ),
            Panel(
                "Chat opens vs messages sent",
                (
                    ("sum(increase(ux_chat_opened_total[1h]))", "chat pages opened"),
                    ("sum(increase(assistant_tool_queries_total[1h]))", "questions asked"),
                ),
            ),
        ),
    ),
    Dashboard(
        uid="mailchat-websocket",
        title="WebSocket health",
        panels=(
            Panel(
                "Closes by code",
                ((f"sum by (code) (rate(ws_closes_total[{R}]))", "{{code}}"),),
                unit="ops",
                description="1006/1011 are abnormal (WebSocketAbnormalCloses); 1013 is overload.",
            ),
            Panel(
                "Abnormal vs all closes",
                (
                    (
                        f'sum(rate(ws_closes_total{{code=~"1006|1011"}}[{R}])) or vector(0)',
                        "abnormal/s",
                    ),
                    (f"sum(rate(ws_closes_total[{R}]))", "all closes/s"),
                ),
                unit="ops",
            ),
            Panel(
                "Connection durations",
                _quantiles("ws_connection_duration_seconds"),
                unit="s",
            ),
            Panel(
                "Reconnect advice by why",
                ((f"sum by (why) (rate(ws_reconnect_advice_total[{R}]))", "{{why}}"),),
                unit="ops",
            ),
            Panel(
                "Frames sent by event",
                ((f"sum by (event) (rate(ws_frames_sent_total[{R}]))", "{{event}}"),),
                unit="ops",
            ),
            Panel("Open sockets", (("sum(ws_connections_active)", "open"),), kind="stat"),
        ),
    ),
    Dashboard(
        uid="mailchat-delivery-queues",
        title="Delivery and queues",
        panels=(
            Panel(
                "Delivery attempts by outcome",
                ((f"sum by (outcome) (rate(delivery_attempts_total[{R}]))", "{{outcome}}"),),
                unit="ops",
            ),
            Panel(
                "Delivery latency p50 / p95 / p99",
                _quantiles("delivery_latency_seconds"),
                unit="s",
            ),
            Panel(
                "Queue depth",
                (("max by (queue) (celery_queue_length)", "{{queue}}"),),
                description="QueueBacklog fires above 1,000 for 10 m.",
            ),
            Panel("Dead letters", (("max(delivery_dead_letters)", "dead letters"),), kind="stat"),
            Panel(
                "Tasks by name and state",
                (
                    (
                        f"sum by (task, state) (rate(celery_tasks_total[{R}]))",
                        "{{task}} {{state}}",
                    ),
                ),
                unit="ops",
            ),
            Panel(
                "Task run time p95 by task",
                (
                    (
                        "histogram_quantile(0.95, sum by (le, task)"
                        f" (rate(celery_task_runtime_seconds_bucket[{R}])))",
                        "{{task}}",
                    ),
                ),
                unit="s",
            ),
            Panel(
                "Task retries",
                ((f"sum by (task) (rate(celery_task_retries_total[{R}]))", "{{task}}"),),
                unit="ops",
            ),
        ),
    ),
    Dashboard(
        uid="mailchat-sync",
        title="Mail sync",
        panels=(
            Panel(
                "Sync runs by provider and outcome",
                (
                    (
                        "sum by (provider, outcome) (increase(mail_sync_runs_total[1h]))",
                        "{{provider}} {{outcome}}",
                    ),
                ),
            ),
            Panel(
                "Messages indexed",
                ((f"sum by (provider) (rate(mail_sync_messages_total[{R}]))", "{{provider}}"),),
                unit="ops",
            ),
            Panel(
                "Sync lag (stalest account)",
                (("max by (provider) (mail_sync_lag_seconds)", "{{provider}}"),),
                unit="s",
                description="MailSyncLagging fires above 1 h for 15 m.",
            ),
            Panel(
                "Emails indexed by imports",
                ((f"sum(rate(mail_emails_indexed_total[{R}]))", "emails/s"),),
                unit="ops",
            ),
        ),
    ),
    Dashboard(
        uid="mailchat-slo",
        title="SLOs and error budgets",
        panels=(
            Panel(
                "Error ratio (1 h) by SLO",
                (("slo:error_ratio:rate1h", "{{slo}}"),),
                unit="percentunit",
            ),
            Panel(
                "Burn rate (1 h) by SLO",
                (("slo:error_ratio:rate1h / on (slo) slo:error_budget:ratio", "{{slo}}"),),
                description="Pages at 14.4x (1 h and 5 m) or 6x (6 h and 30 m).",
            ),
            Panel(
                "Error budget remaining (3 d)",
                (("slo:error_budget_remaining:ratio3d", "{{slo}}"),),
                unit="percentunit",
                kind="stat",
            ),
            Panel(
                "Readiness checks",
                (("min by (check) (readyz_check_up)", "{{check}}"),),
                description="ReadinessFailing fires when a check is 0 for 2 m.",
            ),
        ),
    ),
)


def render(dashboard: Dashboard) -> dict[str, Any]:
    panels = []
    for number, panel in enumerate(dashboard.panels):
        panels.append(
            {
                "id": number + 1,
                "type": panel.kind,
                "title": panel.title,
                "description": panel.description,
                "datasource": DATASOURCE,
                "gridPos": {"x": (number % 2) * 12, "y": (number // 2) * 8, "w": 12, "h": 8},
                "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
                "options": {},
                "targets": [
                    {
                        "refId": chr(ord("A") + index),
                        "datasource": DATASOURCE,
                        "expr": expr,
                        "legendFormat": legend,
                    }
                    for index, (expr, legend) in enumerate(panel.targets)
                ],
            }
        )
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "tags": list(dashboard.tags),
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def rendered() -> dict[Path, str]:
    return {
        DASHBOARD_DIR / f"{d.uid}.json": json.dumps(render(d), indent=2) + "\n" for d in DASHBOARDS
    }


def main() -> int:
    DASHBOARD_DIR.mkdir(parents=True, exist_ok=True)
    for path, text in rendered().items():
        path.write_text(text)
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
