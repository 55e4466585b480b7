"""Optional phrasing of an answer by a language model, behind an OpenAI-compatible API.

Off unless ``MAILCHAT_LLM_BASE_URL`` is set; then the rule-based answer (the
draft, computed once by ``respond.prepare_draft``) is what the model's reply
falls back to. The model only phrases: it sees the question and the emails the
search chose (``llm_prompt``), its text streams to the client as ``delta``
events as it arrives, and the citations stay the search's. On an error, a
timeout, an empty reply or an unreachable server the rule-based answer is sent
instead, and the answer says so.

Exactly once, across retries and redeliveries of the task. Deltas of a phrased
answer are written under the parts ``llm:<n>`` (one dedup key each), and its
final pieces are stored once beside the draft (``SET NX``, key
``answer_phrasing``) before the ``done``. A run of the task then does one of:

- pieces stored: emit them (the parts already in the log are no-ops) and end;
- nothing stored, no ``llm:0`` in the log: nobody has shown a word yet, so ask
  the model (afresh after a retry: the earlier reply was never seen);
- nothing stored but ``llm:0`` in the log: an earlier run died mid-reply. A
  second reply would not continue the first (the model is not deterministic),
  so the model is not asked again: the text already shown is read back from
  the log and finished with the rule-based answer, saying the model was
  interrupted. The log never holds pieces of two replies.

Two runs of one attempt at once cannot happen: a redelivery comes only after the
broker's visibility timeout, which must exceed the task's hard time limit (see
``search_visibility_timeout_seconds``), so the first run is dead by then.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from enum import StrEnum
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

import httpx2
import openai
import redis

from shared.assistant.answer import answer_pieces
from shared.assistant.dedup_keys import answer_ref, event_key
from shared.assistant.llm_prompt import CitationMarks, build_messages
from shared.core import metrics
from shared.core.events import EventType
from shared.core.keys import RedisKeys
from shared.core.settings import Settings
from shared.realtime.eventlog import EventLog, position_before

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam

    from shared.assistant.respond import AskedQuestion, Draft

log = logging.getLogger(__name__)
# The client logs whole requests (the question, the emails) at DEBUG: never let it.
logging.getLogger("openai").setLevel(logging.WARNING)

PHRASING_TTL_SECONDS = 3600
PIECE_CHARS = 24  # a delta is sent once this much text waited ...
PIECE_SECONDS = 0.1  # ... or this long passed since the last one
READ_BATCH = 50


class FallbackReason(StrEnum):
    """Why an answer was sent rule-based: the label of ``assistant_llm_fallbacks_total``."""

    ERROR = "error"
    TIMEOUT = "timeout"
    EMPTY = "empty"
    UNAVAILABLE = "unavailable"
    INTERRUPTED = "interrupted"


_SAYS = {
    FallbackReason.ERROR: "failed",
    FallbackReason.TIMEOUT: "took too long",
    FallbackReason.EMPTY: "gave an empty reply",
    FallbackReason.UNAVAILABLE: "could not be reached",
    FallbackReason.INTERRUPTED: "was interrupted",
}


class ModelFailed(Exception):
    def __init__(self, reason: FallbackReason) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class Phrased:
    """An answer's final text, as the pieces its ``delta`` events carry."""

    pieces: list[str]
    by: str  # "llm" or "rules"
    fallback: str | None = None  # a FallbackReason when the model's reply was replaced

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str) -> Phrased:
        return cls(**json.loads(raw))


def model_enabled(settings: Settings) -> bool:
    return bool(settings.llm_base_url.strip())


@lru_cache(maxsize=4)
def _client(base_url: str, api_key: str, timeout: float) -> openai.OpenAI:
    """One client (one connection pool) per process and configuration.

    No retries: a retry would start a second reply, and the answer has a
    fallback anyway. ``timeout`` bounds connecting and each read.
    """
    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key or "unused",
        timeout=openai.Timeout(timeout, connect=min(2.0, timeout)),
        max_retries=0,
    )


def model_reply(settings: Settings, messages: list[dict[str, str]]) -> Iterator[str]:
    """The model's reply as text chunks as they arrive; ``ModelFailed`` when it fails.

    The whole reply must arrive within ``llm_timeout_seconds`` (checked at each
    chunk; a server that stalls is cut by the read timeout).
    """
    client = _client(settings.llm_base_url, settings.llm_api_key, settings.llm_timeout_seconds)
    started = time.monotonic()
    deadline = started + settings.llm_timeout_seconds
    try:
        stream = client.chat.completions.create(
            model=settings.llm_model or "default",
            messages=cast("list[ChatCompletionMessageParam]", messages),
            stream=True,
            max_tokens=settings.llm_max_tokens,
            temperature=0.2,
        )
        with stream:
            for chunk in stream:
                if time.monotonic() > deadline:
                    raise ModelFailed(FallbackReason.TIMEOUT)
                for choice in chunk.choices:
                    if choice.delta is not None and choice.delta.content:
                        yield choice.delta.content
    except openai.APITimeoutError as exc:
        raise ModelFailed(FallbackReason.TIMEOUT) from exc
    except openai.APIConnectionError as exc:
        raise ModelFailed(FallbackReason.UNAVAILABLE) from exc
    except (openai.OpenAIError, httpx2.HTTPError) as exc:  # a reply cut mid-stream: httpx2's
        raise ModelFailed(FallbackReason.ERROR) from exc
    finally:
        metrics.ASSISTANT_LLM_SECONDS.observe(time.monotonic() - started)


def fallback_pieces(rule_answer: str, reason: FallbackReason, after_text: bool) -> list[str]:
    """The rule-based answer, introduced by a line saying why the model's was not used."""
    note = f"(The language model {_SAYS[reason]}, so this is the answer from the search.)\n"
    return [("\n\n" if after_text else "") + note, *answer_pieces(rule_answer)]


Part = tuple[str, str, dict[str, Any]]


class Phrasing:
    """One run's way from a draft to the answer's deltas and ``done`` (see the module doc)."""

    def __init__(
        self, r: redis.Redis, settings: Settings, asked: AskedQuestion, draft: Draft
    ) -> None:
        self.r, self.settings, self.asked, self.draft = r, settings, asked, draft
        self.keys = RedisKeys(settings.key_prefix)
        self.stream = self.keys.conversation_events(asked.conversation_id)
        self.key = self.keys.answer_phrasing(
            self.stream, answer_ref(asked.client_message_id, asked.attempt)
        )
        self.final: Phrased | None = None

    def _dedup(self, number: int) -> str:
        part = event_key(self.asked.client_message_id, f"llm:{number}", self.asked.attempt)
        return self.keys.dedup(self.stream, part)

    @staticmethod
    def _delta(number: int, text: str) -> Part:
        return (EventType.DELTA, f"llm:{number}", {"text": text, "index": number})

    def parts(self, rule_parts: list[Part]) -> Iterator[Part]:
        """``search`` and ``hits`` as the rules made them, then the phrased deltas.

        The caller emits each part before asking for the next, so a piece
        yielded and resumed from is in the log.
        """
        yield from (p for p in rule_parts if p[0] != EventType.DELTA)
        stored = self.r.get(self.key)
        if stored:
            self.final = Phrased.from_json(str(stored))
        elif not self.draft.citations:
            # Nothing found: the rules' answer says exactly what was searched; no model needed.
            self.final = self._settle(Phrased(answer_pieces(self.draft.answer), "rules"))
        elif self.r.exists(self._dedup(0)):
            shown = self._shown_pieces()
            pieces = shown + fallback_pieces(self.draft.answer, FallbackReason.INTERRUPTED, True)
            self.final = self._settle(Phrased(pieces, "rules", FallbackReason.INTERRUPTED))
        else:
            shown = []
            try:
                for piece in self._reply_pieces():
                    yield self._delta(len(shown), piece)
                    shown.append(piece)
            except ModelFailed as failed:
                log.warning("language model reply replaced by the rules: %s", failed.reason)
                extra = fallback_pieces(self.draft.answer, failed.reason, bool(shown))
                self.final = self._settle(Phrased(shown + extra, "rules", failed.reason))
            else:
                self.final = self._settle(Phrased(shown, "llm"))
        for number, piece in enumerate(self.final.pieces):
            yield self._delta(number, piece)  # those already in the log are no-ops

    def _reply_pieces(self) -> Iterator[str]:
        """The model's reply in delta-sized pieces, bad citation marks removed."""
        messages = build_messages(
            self.asked.question, self.draft.citations, int(self.draft.search.get("total_hits", 0))
        )
        marks = CitationMarks(len(self.draft.citations))
        buffer, last, any_text = "", time.monotonic(), False
        for chunk in model_reply(self.settings, messages):
            buffer += marks.feed(chunk)
            any_text = any_text or bool(buffer.strip())
            if any_text and (
                len(buffer) >= PIECE_CHARS or time.monotonic() - last >= PIECE_SECONDS
            ):
                yield buffer
                buffer, last = "", time.monotonic()
        buffer += marks.flush()
        if not any_text and not buffer.strip():
            raise ModelFailed(FallbackReason.EMPTY)
        if buffer:
            yield buffer

    def _settle(self, phrased: Phrased) -> Phrased:
        """Store ``phrased`` unless a run stored its own first; the stored one is the answer."""
        if self.r.set(self.key, phrased.to_json(), nx=True, ex=PHRASING_TTL_SECONDS):
            if phrased.fallback:
                metrics.ASSISTANT_LLM_FALLBACKS.labels(reason=phrased.fallback).inc()
            return phrased
        stored = self.r.get(self.key)
        return Phrased.from_json(str(stored)) if stored else phrased

    def _shown_pieces(self) -> list[str]:
        """The texts of the ``llm:<n>`` deltas in the log, read back in order."""
        events = EventLog(self.r, self.settings)
        pieces: list[str] = []
        while True:
            ids = self.r.mget(
                [self._dedup(n) for n in range(len(pieces), len(pieces) + READ_BATCH)]
            )
            for entry_id in ids:
                if not entry_id:
                    return pieces
                read = events.read(self.stream, after=position_before(str(entry_id)), count=1)
                if not read.events or read.events[0].id != str(entry_id):
                    return pieces  # trimmed away: what is left is all that can be kept
                pieces.append(str(read.events[0].data.get("text", "")))

    def done_data(self) -> dict[str, Any]:
        """The ``done`` event's data: the draft, with the phrased text once there is one."""
        data: dict[str, Any] = {"cancelled": False, **asdict(self.draft)}
        if self.final is not None:
            data["answer"] = "".join(self.final.pieces)
            data["phrasing"] = {"by": self.final.by, "fallback": self.final.fallback}
        return data


class RulesOnly:
    """The answer without a model: the rule-based parts and ``done``, as before the model."""

    def __init__(self, draft: Draft) -> None:
        self.draft = draft

    def parts(self, rule_parts: list[Part]) -> Iterator[Part]:
        yield from rule_parts

    def done_data(self) -> dict[str, Any]:
        return {"cancelled": False, **asdict(self.draft)}


def phrase(
    r: redis.Redis, settings: Settings, asked: AskedQuestion, draft: Draft
) -> Phrasing | RulesOnly:
    """The hook ``respond.run_answer`` calls: how this run turns its draft into events."""
    return Phrasing(r, settings, asked, draft) if model_enabled(settings) else RulesOnly(draft)
