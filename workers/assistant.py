"""Assistant tasks: answer a question from the person's own mail."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from elasticsearch import ConnectionError as ESConnectionError

from shared.assistant import answer_question
from shared.clients import get_elasticsearch
from shared.settings import get_settings
from shared.task_names import ASSISTANT_ANSWER

log = logging.getLogger(__name__)


@shared_task(
    name=ASSISTANT_ANSWER,
    ignore_result=False,  # POST /api/chat waits for this result
    autoretry_for=(ESConnectionError,),
    retry_backoff=0.2,
    retry_jitter=True,
    max_retries=2,
    soft_time_limit=20,
    time_limit=30,
)
def answer(user_id: str, question: str, window_days: int) -> dict[str, Any]:
    """Search ``user_id``'s mail for ``question`` and return the grounded answer.

    Read-only, so a redelivery after a crash simply answers again.
    """
    settings = get_settings()
    return answer_question(get_elasticsearch(settings), settings, user_id, question, window_days)
