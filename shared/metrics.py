"""Prometheus metric definitions, one place for every name.

Names and labels are fixed by the seed documents. No label ever carries an
unbounded value (no user, conversation or email ids): window sizes are
bucketed and booleans are "true"/"false".
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ASSISTANT_TOOL_QUERIES = Counter(
    "assistant_tool_queries_total",
    "Searches the assistant ran, by window bucket and whether anything matched.",
    ["window_bucket", "has_hits"],
)
ASSISTANT_ES_DURATION = Histogram(
    "assistant_elasticsearch_duration_seconds",
    "Time the assistant's Elasticsearch search took.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
MAIL_PARSE_WARNINGS = Counter(
    "mail_parse_warnings_total", "Emails indexed with parse warnings (decoded as far as possible)."
)
EMAILS_INDEXED = Counter("mail_emails_indexed_total", "Emails written to the index by imports.")
CHAT_REQUESTS = Counter(
    "chat_requests_total", "Chat questions answered over JSON, by outcome.", ["outcome"]
)


def window_bucket(window_days: int) -> str:
    """The seed's buckets: 7, 30, 60, 90+ (a window falls in the smallest bucket holding it)."""
    if window_days <= 7:
        return "7"
    if window_days <= 30:
        return "30"
    if window_days <= 60:
        return "60"
    return "90+"


def record_assistant_search(window_days: int, total_hits: int, es_seconds: float) -> None:
    """Count one assistant search; called where /metrics is served (the web process)."""
    has_hits = "true" if total_hits > 0 else "false"
    ASSISTANT_TOOL_QUERIES.labels(window_bucket=window_bucket(window_days), has_hits=has_hits).inc()
    ASSISTANT_ES_DURATION.observe(es_seconds)
