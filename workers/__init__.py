"""Celery tasks, one module per domain. Tasks decode ids, call ``shared/``, and own
only retries and idempotency."""

import logging

logging.getLogger("elastic_transport").setLevel(logging.WARNING)
