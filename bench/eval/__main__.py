"""``make eval``: how well the assistant answers labelled questions over the demo mailbox.

Runs the real pipeline (gunicorn, a Celery worker, Redis, noida-db) on fresh servers,
asks every question of ``bench.eval.questions`` through ``POST /api/chat`` (follow-ups
in the conversation of the question they refine), and scores the answers against
labels computed from the generator's facts:

- recall@5: of the emails a question needs, the share among the first five citations
  (of at most five needed);
- false "nothing": a question with needed emails answered with no citation;
- honest negatives: a question whose honest answer is "nothing" answered with no citation;
- intent accuracy: ``search.intent`` equals the labelled intent;
- exact counts: for "how many", ``search.count`` (or ``total_hits``) equals the label;
- per-category precision/recall of the ``category`` stored on each document.

Prints ``name: value`` lines and writes ``eval-results.json`` (every question, what was
expected and what came back). ``--strict`` exits 1 when an aim is missed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.eval.facts import CATEGORY_OF_KIND, MailFact, mailbox_facts
from bench.eval.questions import Question, build_questions
from bench.stack import local_servers, post, web_and_worker
from devtools.demo_mailbox import DEFAULT_SEED, write_mbox
from shared.core.clients import get_elasticsearch, get_redis
from shared.core.settings import Settings
from shared.identity.users import create_user
from shared.index.writer import import_mbox

EMAIL, PASSWORD = "eval@example.com", "eval-password"
COUNT, DAYS = 2000, 89  # inside the default 90-day retention: every labelled email is kept
AIMS = {"recall_at_5": 0.95, "count_exact": 0.95, "false_nothing": 0, "negative_citations": 0}


def ask_all(base: str, questions: list[Question]) -> list[dict[str, Any]]:
    token = post(f"{base}/api/auth/login", {"email": EMAIL, "password": PASSWORD})["access_token"]
    answers: list[dict[str, Any]] = []
    for number, question in enumerate(questions):
        body: dict[str, Any] = {"q": question.text, "client_message_id": f"eval-{number}"}
        if question.follow_up_of is not None:
            body["conversation_id"] = answers[question.follow_up_of].get("conversation_id")
        started = time.perf_counter()
        try:
            answer = post(f"{base}/api/chat", body, token, timeout=60)
        except OSError as exc:
            answer = {"error": str(exc)}
        answer["seconds"] = round(time.perf_counter() - started, 3)
        answers.append(answer)
    return answers


def score(questions: list[Question], answers: list[dict[str, Any]]) -> dict[str, Any]:
    recalls, intents, counts = [], [], []
    false_nothing = negative_citations = negatives = 0
    for question, answer in zip(questions, answers, strict=True):
        cited = [c["id"] for c in answer.get("citations", [])]
        search = answer.get("search") or {}
        intents.append(search.get("intent") == question.intent)
        if question.intent == "count" and question.count is not None:
            reported = search.get("count", search.get("total_hits"))
            counts.append(reported == question.count)
        if question.needed:
            top = set(cited[:5])
            wanted = question.needed[:5] if question.intent != "count" else question.needed
            recalls.append(len(top & set(question.needed)) / min(5, len(wanted)))
            false_nothing += not cited
        elif question.honest_negative:
            negatives += 1
            negative_citations += bool(cited)
    return {
        "questions": len(questions),
        "recall_at_5": round(sum(recalls) / len(recalls), 3) if recalls else None,
        "false_nothing": false_nothing,
        "honest_negatives": negatives,
        "negative_citations": negative_citations,
        "intent_accuracy": round(sum(intents) / len(intents), 3),
        "count_exact": round(sum(counts) / len(counts), 3) if counts else None,
    }


def category_scores(settings: Settings, facts: list[MailFact]) -> dict[str, Any]:
    """Precision and recall of the stored ``category`` per category (None: not stored)."""
    es = get_elasticsearch(settings)
    truth = {f.doc_id: CATEGORY_OF_KIND.get(f.kind) for f in facts}
    stored: dict[str, str | None] = {}
    for start in range(0, len(facts), 500):
        ids = [f.doc_id for f in facts[start : start + 500]]
        for doc in es.mget(index=settings.index_alias, ids=ids, source=["category"])["docs"]:
            if doc.get("found"):
                stored[doc["_id"]] = (doc.get("_source") or {}).get("category")
    if not any(stored.values()):
        return {"stored": False}
    result: dict[str, Any] = {"stored": True}
    for category in sorted(set(CATEGORY_OF_KIND.values())):
        predicted = {d for d, c in stored.items() if c == category}
        actual = {d for d, c in truth.items() if c == category}
        hit = len(predicted & actual)
        result[category] = {
            "precision": round(hit / len(predicted), 3) if predicted else None,
            "recall": round(hit / len(actual), 3) if actual else None,
        }
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make eval", description=__doc__)
    parser.add_argument("--strict", action="store_true", help="exit 1 when an aim is missed")
    parser.add_argument("--output", default="eval-results.json")
    args = parser.parse_args(argv)
    with local_servers("mailchat-eval:") as (settings, workdir):
        today = datetime.now(UTC).date()
        user = create_user(get_redis(settings), settings, EMAIL, PASSWORD)
        mbox = workdir / "demo.mbox"
        write_mbox(mbox, owner_address=EMAIL, today=today, count=COUNT, days=DAYS)
        import_mbox(get_elasticsearch(settings), settings, user.id, mbox, refresh=True)
        facts = mailbox_facts(user.id, EMAIL, today, COUNT, DAYS, DEFAULT_SEED)
        questions = build_questions(facts, datetime.now(UTC))
        # One person asking 150 questions in a row is the eval, not abuse: lift the ask limit.
        unlimited = {"MAILCHAT_ASK_RATE_LIMIT": "100000 per minute"}
        with web_and_worker(settings, workdir, unlimited) as (base, _web, _worker):
            answers = ask_all(base, questions)
        categories = category_scores(settings, facts)
    summary = score(questions, answers)
    by_intent = Counter(q.intent for q in questions)
    print(
        f"questions: {summary['questions']} ({', '.join(f'{k} {v}' for k, v in sorted(by_intent.items()))})"
    )
    for name in (
        "recall_at_5",
        "false_nothing",
        "honest_negatives",
        "negative_citations",
        "intent_accuracy",
        "count_exact",
    ):
        aim = AIMS.get(name)
        print(
            f"{name}: {summary[name]}"
            + (
                f" (aim {'>=' if isinstance(aim, float) else '=='} {aim})"
                if aim is not None
                else ""
            )
        )
    print(f"categories: {json.dumps(categories)}")
    missed = [
        name for name, aim in AIMS.items()
        if summary[name] is None or (summary[name] < aim if isinstance(aim, float) else summary[name] != aim)
    ]  # fmt: skip
    print(f"aims met: {'yes' if not missed else 'no (' + ', '.join(missed) + ')'}")
    details = [
        {**q.__dict__, "answer": a.get("answer"), "cited": [c["id"] for c in a.get("citations", [])],
         "search": a.get("search"), "seconds": a.get("seconds"), "error": a.get("error")}
        for q, a in zip(questions, answers, strict=True)
    ]  # fmt: skip
    Path(args.output).write_text(
        json.dumps(
            {"summary": summary, "categories": categories, "questions": details},
            indent=2,
            default=str,
        )
    )
    print(f"wrote {args.output}")
    return 1 if args.strict and missed else 0


if __name__ == "__main__":
    sys.exit(main())
