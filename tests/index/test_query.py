"""The bounded query compiler: terms, not syntax; at most N of them; the rest reported."""

from __future__ import annotations

import json

import pytest

from shared.core.settings import Settings
from shared.index.query import compile_terms
from shared.index.search import SearchOutcome, search_request

HOSTILE = " OR ".join(["interview"] + [f"x{n}" for n in range(300)])


def test_a_300_clause_question_compiles_to_at_most_max_terms_clauses() -> None:
    compiled = compile_terms(HOSTILE, 8)
    assert compiled.terms == ("interview", "x0", "x1", "x2", "x3", "x4", "x5", "x6")
    assert len(compiled.clauses()) == 8
    assert compiled.ignored_terms[0] == "x7" and len(compiled.ignored_terms) == 293
    assert "OR" not in compiled.terms + compiled.ignored_terms


def test_repeated_words_are_one_term() -> None:
    compiled = compile_terms("interview OR x OR x OR X OR Interview " * 60, 8)
    assert compiled.terms == ("interview", "x") and compiled.ignored_terms == ()


@pytest.mark.parametrize(
    ("text", "terms"),
    [
        ("owner_id:u_bob", ("owner_id", "u_bob")),
        ('"}}, {"match_all": {}}', ("match_all",)),
        ("interview | * | -zzz", ("interview", "zzz")),
        ("from:alice@example.com (offer)", ("from", "alice@example.com", "offer")),
        ("Zoë's re-send", ("Zoë's", "re-send")),
        ("*:* AND NOT", ()),
    ],
)
def test_user_syntax_is_only_text(text: str, terms: tuple[str, ...]) -> None:
    assert compile_terms(text, 8).terms == terms


def test_no_user_syntax_reaches_elasticsearch() -> None:
    settings = Settings(search_max_terms=4, search_timeout_seconds=1.5)
    request = search_request(settings, "u_alice", compile_terms(HOSTILE, 4), 30, 8)
    text = json.dumps(request)
    assert "query_string" not in text  # neither query_string nor simple_query_string
    assert request["query"]["bool"]["must"] == compile_terms(HOSTILE, 4).clauses()
    assert len(request["query"]["bool"]["must"]) == 4
    assert {"term": {"owner_id": "u_alice"}} in request["query"]["bool"]["filter"]
    assert request["timeout"] == "1500ms"  # the server-side limit


def test_the_answer_says_which_words_were_ignored() -> None:
    from shared.assistant.answer import compose_answer

    compiled = compile_terms(HOSTILE, 8)
    outcome = SearchOutcome(compiled.text, 30, 0, [], 0.01, compiled.ignored_terms, timed_out=True)
    description = outcome.description()
    assert description["query"] == "interview x0 x1 x2 x3 x4 x5 x6"
    assert description["ignored_terms"] == list(compiled.ignored_terms)
    assert description["timed_out"] is True
    answer = compose_answer(outcome)
    assert "first 8 words; 293 more were ignored: “x7”" in answer
    assert "ran out of time" in answer


def test_the_limit_is_a_setting() -> None:
    settings = Settings.from_env(
        {"MAILCHAT_SEARCH_MAX_TERMS": "3", "MAILCHAT_SEARCH_TIMEOUT_SECONDS": "2.5"}
    )
    assert (settings.search_max_terms, settings.search_timeout_seconds) == (3, 2.5)
