"""Prometheus metric definitions, one place for every name.

Names and labels are fixed by the seed documents. No label ever carries an
unbounded value (no user, conversation or email ids): window sizes are
bucketed and booleans are "true"/"false".
"""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from shared.core.events import ControlType, EventType

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
ASSISTANT_INTENT = Counter(
    "assistant_intent_total", "Questions answered, by the intent the assistant read.", ["intent"]
)
ASSISTANT_RELAXED = Counter(
    "assistant_relaxed_total",
    "Answers found only after relaxing the strict query, by the step that found them.",
    ["step"],
)
ASSISTANT_ANSWER_SECONDS = Histogram(
    "assistant_answer_seconds",
    "Time to compute an answer (understanding, searches, composing), the search server's included.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
ASSISTANT_LLM_SECONDS = Histogram(
    "assistant_llm_seconds",
    "Time the optional LLM phrasing step took.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
ASSISTANT_LLM_FALLBACKS = Counter(
    "assistant_llm_fallbacks_total",
    "Answers sent rule-based because the LLM step failed, by reason.",
    ["reason"],
)
# The fixed vocabularies of the labels above (anything else is counted as "other").
INTENTS = frozenset(
    {"find", "count", "summarize", "latest", "needs_reply", "unsubscribe", "attachments",
     "unsupported"}
)  # fmt: skip
RELAX_STEPS = frozenset({"window", "fuzzy", "drop_word", "any_words"})
MAIL_PARSE_WARNINGS = Counter(
    "mail_parse_warnings_total", "Emails indexed with parse warnings (decoded as far as possible)."
)
EMAILS_INDEXED = Counter("mail_emails_indexed_total", "Emails written to the index by imports.")

# Index lifecycle (issue 6), counted in the process that runs the job (worker or CLI).
# Outcomes are a fixed vocabulary: see shared.index.lifecycle.jobs.ROLLOVER_OUTCOMES.
INDEX_ROLLOVERS = Counter(
    "index_rollovers_total", "Rollover checks of the write alias, by outcome.", ["outcome"]
)
INDEX_RETENTION_DELETED = Counter(
    "index_retention_deleted_total", "Indices deleted by the retention job."
)
INDEX_WRITE_INDEX_AGE = Gauge(
    "index_write_index_age_seconds",
    "Age of the write index at the last lifecycle check.",
    multiprocess_mode="mostrecent",
)
INDEX_WRITE_INDEX_PRIMARY_BYTES = Gauge(
    "index_write_index_primary_bytes",
    "Size of the write index's primary shards at the last lifecycle check.",
    multiprocess_mode="mostrecent",
)
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


def record_assistant_answer(search: dict[str, Any], answer_seconds: float | None) -> None:
    """Count one answer's intent, the relaxation step that found it, and its time."""
    intent = str(search.get("intent") or "find")
    ASSISTANT_INTENT.labels(intent=intent if intent in INTENTS else "other").inc()
    relaxed = search.get("relaxed") or []
    if relaxed:
        step = str(relaxed[-1])
        ASSISTANT_RELAXED.labels(step=step if step in RELAX_STEPS else "other").inc()
    if answer_seconds is not None:
        ASSISTANT_ANSWER_SECONDS.observe(answer_seconds)


# Realtime delivery (issue 3). Gauges sum across gunicorn workers in multiprocess mode.
WS_CONNECTIONS_ACTIVE = Gauge(
    "ws_connections_active", "Open WebSockets.", multiprocess_mode="livesum"
)
WS_CONNECTION_DURATION = Histogram(
    "ws_connection_duration_seconds",
    "How long WebSockets stayed open.",
    buckets=(1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
WS_CLOSES = Counter("ws_closes_total", "WebSocket closes by code and reason.", ["code", "reason"])
WS_FRAMES_SENT = Counter(
    "ws_frames_sent_total", "Frames sent to WebSockets, by event type.", ["event"]
)
WS_RECONNECT_ADVICE = Counter(
    "ws_reconnect_advice_total", "Advice frames telling clients to reconnect, by why.", ["why"]
)
SSE_STREAMS_ACTIVE = Gauge("sse_streams_active", "Open SSE streams.", multiprocess_mode="livesum")
MAIL_SKIPPED_EXPIRED = Counter(
    "mail_skipped_expired_total",
    "Emails not indexed because they are older than MAILCHAT_RETENTION_DAYS.",
)
DELIVERY_ATTEMPTS = Counter(
    "delivery_attempts_total", "Event deliveries to a log, by outcome.", ["outcome"]
)
DELIVERY_LATENCY = Histogram(
    "delivery_latency_seconds",
    "From enqueueing a delivery to its event being in the log.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30),
)
EVENT_LOG_RESETS = Counter(
    "event_log_resets_total", "Resumes answered with reset (epoch changed or position trimmed)."
)

# UX telemetry from the browser client (issue 4). user_agent_type is one of
# shared.core.user_agents.USER_AGENT_TYPES, never the raw User-Agent.
UX_CHAT_OPENED = Counter("ux_chat_opened_total", "Chat pages opened (POST /api/ux/chat/opened).")
UX_HEARTBEAT = Counter(
    "ux_heartbeat_total",
    "Heartbeats of visible chat pages (every 30 s), by kind of client.",
    ["user_agent_type"],
)

# Mail sync (issue 5). provider is gmail/imap/mbox, outcome a fixed vocabulary
# (ok, needs_reauth, error, locked), method a Gmail API method name, status an HTTP status.
MAIL_SYNC_RUNS = Counter(
    "mail_sync_runs_total", "Mail sync runs, by provider and outcome.", ["provider", "outcome"]
)
MAIL_SYNC_MESSAGES = Counter(
    "mail_sync_messages_total", "Messages indexed by mail sync, by provider.", ["provider"]
)
MAIL_SYNC_LAG = Gauge(
    "mail_sync_lag_seconds",
    "Seconds since the stalest account of a provider last synced successfully.",
    ["provider"],
    multiprocess_mode="max",
)
GMAIL_API_REQUESTS = Counter(
    "gmail_api_requests_total", "Gmail API calls, by method and HTTP status.", ["method", "status"]
)
MAIL_SYNC_BACKOFFS = Counter(
    "mail_sync_backoffs_total",
    "Waits before retrying a provider, by reason (rate_limit, server_error, quota, network).",
    ["provider", "reason"],
)

# Event types are a fixed vocabulary; anything else is counted as "other".
KNOWN_FRAME_TYPES = frozenset({*EventType, *ControlType})


def frame_label(frame_type: str) -> str:
    return frame_type if frame_type in KNOWN_FRAME_TYPES else "other"


_frame_counters: dict[str, Any] = {}


def count_frame_sent(frame_type: str) -> None:
    """Count one WebSocket frame; the labelled child is looked up once per type (hot path)."""
    label = frame_label(frame_type)
    counter = _frame_counters.get(label)
    if counter is None:
        counter = _frame_counters[label] = WS_FRAMES_SENT.labels(event=label)
    counter.inc()


# Celery (issue 13), counted in the worker's pool processes (workers/telemetry.py). task is
# a registered task name (anything else is "other"); state one of CELERY_TASK_STATES.
CELERY_TASK_STATES = ("succeeded", "failed", "retried", "rejected", "revoked")
CELERY_TASKS = Counter(
    "celery_tasks_total",
    "Celery tasks that ended an attempt, by task name and state.",
    ["task", "state"],
)
CELERY_TASK_RUNTIME = Histogram(
    "celery_task_runtime_seconds",
    "Run time of tasks that succeeded (the task-completion SLO: 90 % within 30 s).",
    ["task"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0, 3600.0),
)
CELERY_TASK_RETRIES = Counter(
    "celery_task_retries_total", "Task retries scheduled, by task name.", ["task"]
)

# Readiness (issue 13): the last result of each /readyz check in this instance, so an
# alert can name the failing dependency. Checks are a fixed vocabulary (web/api/health.py).
READYZ_CHECK_UP = Gauge(
    "readyz_check_up",
    "1 when the readiness check passed at its last run, else 0.",
    ["check"],
    multiprocess_mode="mostrecent",
)
READYZ_CHECK_SECONDS = Histogram(
    "readyz_check_duration_seconds",
    "Time each readiness check took.",
    ["check"],
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


class RedisBacklogCollector:
    """Queue depth per Celery queue and dead letters, read from Redis at scrape time.

    These are properties of the shared Redis, not of a process, so they are
    collected where /metrics is served rather than counted: any web instance
    reports the same value (rules take ``max``). Kombu keeps a Redis queue as a
    list named after the queue, plus one list per priority step.
    """

    PRIORITY_SEPARATOR = "\x06\x16"
    PRIORITY_STEPS = (1, 2, 3, 4, 5, 6, 7, 8, 9)

    def __init__(self, redis: Any, dead_letters_key: str, queues: tuple[str, ...]) -> None:
        self.redis = redis
        self.dead_letters_key = dead_letters_key
        self.queues = queues

    def collect(self) -> Any:
        from prometheus_client.core import GaugeMetricFamily

        depth = GaugeMetricFamily(
            "celery_queue_length", "Messages waiting in each Celery queue.", labels=["queue"]
        )
        dead = GaugeMetricFamily(
            "delivery_dead_letters", "Deliveries in the dead-letter stream (failed their last try)."
        )
        up = GaugeMetricFamily("redis_backlog_scrape_ok", "1 when Redis answered this scrape.")
        try:
            pipe = self.redis.pipeline(transaction=False)
            for queue in self.queues:
                pipe.llen(queue)
                for step in self.PRIORITY_STEPS:
                    pipe.llen(f"{queue}{self.PRIORITY_SEPARATOR}{step}")
            pipe.xlen(self.dead_letters_key)
            values = pipe.execute()
        except Exception:  # a scrape must not fail because Redis is down; the alert says so
            up.add_metric([], 0)
            yield up
            return
        per_queue = len(self.PRIORITY_STEPS) + 1
        for number, queue in enumerate(self.queues):
            depth.add_metric([queue], sum(values[number * per_queue : (number + 1) * per_queue]))
        dead.add_metric([], values[-1])
        up.add_metric([], 1)
        yield depth
        yield dead
        yield up


# Rate limits and sessions (issue 10). ``limit`` is one of shared.core.ratelimit.LIMIT_NAMES;
# ``reason`` one of shared.identity.sessions.END_REASONS. Both fixed vocabularies.
HTTP_RATE_LIMITED = Counter(
    "http_rate_limited_total",
    "Requests, frames and sockets refused by a rate limit (429, or 1013 on WebSockets).",
    ["limit"],
)
STREAM_SESSIONS_ENDED = Counter(
    "stream_sessions_ended_total",
    "Open SSE streams and WebSockets closed because their token stopped being valid.",
    ["transport", "reason"],
)
