"""Part of ``Settings``: the rate-limit, mail-sync and operability fields.

``Settings`` inherits these, so every field is still ``settings.<name>`` and read from
``MAILCHAT_<NAME>``; they live in their own module only to keep each file readable.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LimitsSyncAndOperationsSettings:
    # Rate limits (issue 10), in the syntax of the `limits` package ("N per minute;M per hour").
    login_rate_limit: str = field(
        default="30 per minute", metadata={"doc": "Login attempts one IP address may make"}
    )
    auth_rate_limit: str = field(
        default="30 per minute",
        metadata={"doc": "Refresh, logout and password requests per IP address"},
    )
    ask_rate_limit: str = field(
        default="20 per minute;300 per day",
        metadata={"doc": "Questions one person may ask (POST, SSE and WebSocket together)"},
    )
    ws_frame_rate_limit: str = field(
        default="60 per 10 seconds",
        metadata={"doc": "Frames one WebSocket may send (beyond: an error frame, then 1013)"},
    )
    ws_max_sockets_per_user: int = field(
        default=20, metadata={"doc": "Open WebSockets one person may hold (beyond: 1013)"}
    )
    sync_rate_limit: str = field(
        default="10 per minute;100 per day",
        metadata={"doc": "Syncs one person may ask for (POST /api/accounts/<id>/sync)"},
    )
    upload_rate_limit: str = field(
        default="10 per hour", metadata={"doc": "Mailbox uploads one person may start"}
    )
    upload_bytes_per_day: int = field(
        default=50 * 1024**3, metadata={"doc": "Upload bytes one person may send a day"}
    )
    # Mail sync (issue 5): accounts, Gmail, IMAP, uploads, schedules.
    credentials_key: str = field(
        default="",
        metadata={
            "doc": "Fernet key(s) encrypting mailbox credentials, comma-separated, newest "
            "first; empty = generated once into DATA_DIR/credentials_key",
            "secret": True,
        },
    )
    sync_interval_minutes: int = field(
        default=15, metadata={"doc": "Beat runs mail.sync_all this often (0 = never)"}
    )
    sync_time_limit_seconds: int = field(
        default=3600,
        metadata={"doc": "Hard limit of one mail.sync_account run; its account lock expires too"},
    )
    sync_retry_base_seconds: float = field(
        default=30.0,
        metadata={
            "doc": "First retry of a failed sync (search or provider down) within this many "
            "seconds (full jitter), doubling each retry up to an hour"
        },
    )
    sync_batch_size: int = field(
        default=200,
        metadata={"doc": "Messages per sync batch (the cursor advances after each); Gmail max 50"},
    )
    gmail_client_id: str = field(
        default="", metadata={"doc": "Google OAuth client id (web application); empty = no Gmail"}
    )
    gmail_client_secret: str = field(
        default="", metadata={"doc": "Google OAuth client secret", "secret": True}
    )
    gmail_redirect_uri: str = field(
        default="",
        metadata={"doc": "OAuth redirect URI; empty = this server's /api/accounts/gmail/callback"},
    )
    gmail_backfill_days: int = field(
        default=365, metadata={"doc": "Days of Gmail history a full sync fetches (0 = all)"}
    )
    gmail_quota_units_per_minute: int = field(
        default=15000,
        metadata={"doc": "Gmail API quota units one account may spend per minute (Google: 15,000)"},
    )
    gmail_max_retries: int = field(
        default=6, metadata={"doc": "Retries of a rate-limited or failing Gmail API call"}
    )
    gmail_pubsub_topic: str = field(
        default="",
        metadata={"doc": "Pub/Sub topic for Gmail watch (projects/P/topics/T); empty = no push"},
    )
    gmail_push_token: str = field(
        default="",
        metadata={"doc": "Secret the Pub/Sub push URL carries as ?token=", "secret": True},
    )
    imap_timeout_seconds: float = field(
        default=60.0, metadata={"doc": "Socket timeout of IMAP connections"}
    )
    imap_allow_private_hosts: bool = field(
        default=False,
        metadata={"doc": "Allow IMAP accounts on loopback/private addresses (tests, LAN servers)"},
    )
    upload_max_bytes: int = field(
        default=20 * 1024**3,
        metadata={"doc": "Largest mbox accepted (POST /api/mail/import or /api/uploads)"},
    )
    redis_max_connections: int = field(
        default=64, metadata={"doc": "Redis connections per process (callers queue beyond it)"}
    )
    delivery_redeliver_after_seconds: float = field(
        default=120.0,
        metadata={"doc": "Re-send a delivery still unsettled after this long (its task was lost)"},
    )
    delivery_sweep_seconds: float = field(
        default=30.0, metadata={"doc": "How often beat sweeps the delivery outbox"}
    )
    broker_visibility_timeout_seconds: int = field(
        default=3600,
        metadata={"doc": "A task unacknowledged this long (its worker died) is delivered again"},
    )
    search_visibility_timeout_seconds: int = field(
        default=60,
        metadata={
            "doc": "The same for a worker consuming only the search queue (make run's "
            "search worker): an answer interrupted by a dead worker is redelivered this soon; "
            "must exceed the answer task's hard time limit (30 s)"
        },
    )
    key_prefix: str = field(default="mailchat:", metadata={"doc": "Prefix of every Redis key"})
    # Operability (issue 13).
    worker_metrics_port: int = field(
        default=0,
        metadata={
            "doc": "Port of the Celery worker's own /metrics (its own PROMETHEUS_MULTIPROC_DIR, "
            "wiped at start); 0 = none: the worker shares the web's directory (make run)"
        },
    )
    worker_metrics_host: str = field(
        default="127.0.0.1", metadata={"doc": "Address the worker's /metrics binds"}
    )
    readyz_cache_seconds: float = field(
        default=3.0, metadata={"doc": "How long /readyz reuses its last result per process"}
    )
    readyz_startup_grace_seconds: float = field(
        default=20.0,
        metadata={
            "doc": "After start, failing /readyz checks answer 503 'starting' without "
            "warnings or failing the readyz_check_up metric"
        },
    )
