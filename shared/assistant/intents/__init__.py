"""The assistant's intents: each turns an understood question into a ``Result``."""

from __future__ import annotations

from collections.abc import Callable

from shared.assistant.intents.base import Context, Result
from shared.assistant.intents.digest import run_digest
from shared.assistant.intents.find import run_find
from shared.assistant.intents.threads import run_needs_reply, run_unsubscribe
from shared.assistant.understand import Intent

RUNNERS: dict[Intent, Callable[[Context], Result]] = {
    Intent.FIND: run_find,
    Intent.COUNT: run_find,
    Intent.LATEST: run_find,
    Intent.ATTACHMENTS: run_find,
    Intent.SUMMARIZE: run_digest,
    Intent.NEEDS_REPLY: run_needs_reply,
    Intent.UNSUBSCRIBE: run_unsubscribe,
}


def run_intent(ctx: Context) -> Result:
    """The intent's search and result; a question it cannot serve searches nothing."""
    runner = RUNNERS.get(ctx.understanding.intent)
    if runner is None:
        return Result(ctx.understanding.intent)
    return runner(ctx)


__all__ = ["Context", "Result", "run_intent"]
