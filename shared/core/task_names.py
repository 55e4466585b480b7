"""Task names and their queues, in one place.

Web enqueues by name (``send_task``) so it never imports worker code; the
worker registers tasks under the same names. Routing is by name prefix.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ASSISTANT_ANSWER = "assistant.answer"
ASSISTANT_END_OVERDUE = "assistant.end_overdue"
MAIL_IMPORT_MBOX = "mail.import_mbox"
MAIL_SYNC_ACCOUNT = "mail.sync_account"
MAIL_SYNC_ALL = "mail.sync_all"
MAIL_RENEW_GMAIL_WATCH = "mail.renew_gmail_watch"
DELIVERY_DELIVER = "delivery.deliver"
DELIVERY_SWEEP_OUTBOX = "delivery.sweep_outbox"
INDEX_ROLLOVER = "index.rollover"
INDEX_RETENTION = "index.retention"

QUEUE_SEARCH = "search"
QUEUE_SYNC = "sync"
QUEUE_MAINTENANCE = "maintenance"
QUEUE_DELIVERY = "delivery"
ALL_QUEUES = (QUEUE_SEARCH, QUEUE_SYNC, QUEUE_MAINTENANCE, QUEUE_DELIVERY)
# Queues whose every task ends (or is killed by its hard time limit) within seconds: a worker
# consuming only these may use the short broker visibility timeout (celery_app).
SHORT_QUEUES = (QUEUE_SEARCH,)

# Celery's task_routes accepts glob patterns: one line per domain. An exact name wins
# over the patterns: the overdue-question sweep must not wait behind the very backlog of
# searches whose questions it ends.
TASK_ROUTES = {
    ASSISTANT_END_OVERDUE: {"queue": QUEUE_MAINTENANCE},
    "assistant.*": {"queue": QUEUE_SEARCH},
    "mail.*": {"queue": QUEUE_SYNC},
    "index.*": {"queue": QUEUE_MAINTENANCE},
    "delivery.*": {"queue": QUEUE_DELIVERY},
}

# Celery's ``app.send_task(name, args=..., kwargs=...)``, passed in so shared/ never imports Celery.
SendTask = Callable[..., Any]
