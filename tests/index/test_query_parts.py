"""The bool query built from a question's parts: owner always, bounded, never query syntax."""

from __future__ import annotations

import json

from shared.index.query import QueryParts, TextMode, build_bool, sender_clause


def _walk(node: object) -> list[str]:
    """Every query type used anywhere in the query."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            found.append(key)
            found += _walk(value)
    elif isinstance(node, list):
        for item in node:
            found += _walk(item)
    return found


def test_the_owner_filter_is_always_there_and_no_query_syntax_is_used() -> None:
    parts = QueryParts(
        owner_id="u_a",
        terms=("owner_id:u_b", "*"),
        senders=("Acme*", "x@y.example", "evil.example"),
        category="offer",
        label="Starred",
        attachment_suffixes=(".pdf",),
        unread=True,
        window_days=30,
    )
    query = build_bool(parts)
    assert query["bool"]["filter"][0] == {"term": {"owner_id": "u_a"}}
    used = set(_walk(query))
    assert not used & {"query_string", "simple_query_string", "script", "regexp"}
    # A name cannot widen its own address pattern: '*' and '?' are dropped from it.
    patterns = [w["from_address"]["value"] for w in _find(query, "wildcard") if "from_address" in w]
    assert all(p.count("*") <= 2 and "?" not in p for p in patterns)
    assert "*acme**" not in json.dumps(query)


def _find(node: object, key: str) -> list[dict]:  # type: ignore[type-arg]
    out = []
    if isinstance(node, dict):
        for k, value in node.items():
            if k == key:
                out.append(value)
            out += _find(value, key)
    elif isinstance(node, list):
        for item in node:
            out += _find(item, key)
    return out


def test_text_modes_require_all_all_but_one_or_half_of_the_words() -> None:
    terms = ("car", "insurance", "renewal", "policy")
    strict = build_bool(QueryParts(owner_id="u", terms=terms))
    assert len(strict["bool"]["must"]) == 4
    one_less = build_bool(QueryParts(owner_id="u", terms=terms, text_mode=TextMode.ALL_BUT_ONE))
    assert one_less["bool"]["minimum_should_match"] == 3
    half = build_bool(QueryParts(owner_id="u", terms=terms, text_mode=TextMode.HALF))
    assert half["bool"]["minimum_should_match"] == 2


def test_fuzziness_spares_short_words_and_synonyms_are_alternatives() -> None:
    query = build_bool(
        QueryParts(
            owner_id="u",
            terms=("offer", "car"),
            synonyms=(("offer", ("offer letter",)),),
            fuzzy=True,
        )
    )
    offer, car = query["bool"]["must"]
    assert offer["bool"]["should"][0]["multi_match"]["fuzziness"] == 1
    assert offer["bool"]["should"][1]["multi_match"]["query"] == "offer letter"
    assert "fuzziness" not in car["multi_match"]


def test_a_name_matches_its_own_domain_first() -> None:
    domain_only = json.dumps(sender_clause("Contoso", domain_only=True))
    assert "*@contoso.*" in domain_only and "from_name" not in domain_only
    anyone = json.dumps(sender_clause("Contoso"))
    assert "from_name" in anyone and "*contoso*" in anyone
    assert sender_clause("a@b.example") == {"term": {"from_address": "a@b.example"}}
