"""Compiling a person's words into a bounded Elasticsearch query.

Nothing the person types reaches Elasticsearch as query syntax (no
``query_string``, no ``simple_query_string``): their words are split into
terms, each term becomes one ``multi_match`` clause (analyzed text, where
``OR``, ``*``, ``-`` or ``field:value`` mean nothing), and at most
``max_terms`` terms are used. So one question cannot become a query of 300
clauses that keeps the search server busy for everybody else (noida-db, like
an overloaded Elasticsearch node, answers one query at a time); the terms
beyond the limit are kept as ``ignored_terms`` so the answer says what it
left out.

This is where query understanding grows (senders, labels, attachments as
filters): each new part compiles to a bounded number of clauses here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SEARCH_FIELDS = ["subject^3", "body", "from_name^2", "from_address^2", "attachment_names"]

# A term is letters and digits, held together by the '.', '@', '+', '-' and apostrophes
# inside addresses and names ("alice@example.com", "Zoë's", "re-send"); every other
# character (quotes, brackets, '*', '|', ':', a leading '-') only separates terms.
_TERM = re.compile(r"\w(?:[\w.'@+-]*\w)?", re.UNICODE)

# Search-engine syntax people paste out of habit; not words to look for.
OPERATOR_WORDS = frozenset({"AND", "OR", "NOT"})


@dataclass(frozen=True)
class CompiledQuery:
    """The terms a search uses, and those it ignored because of the limit."""

    terms: tuple[str, ...]
    ignored_terms: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        """The searched terms as one line, for the answer and the ``search`` event."""
        return " ".join(self.terms)

    def clauses(self) -> list[dict[str, Any]]:
        """One clause per term, all required (a term may match in any field).

        ``operator: and`` makes a term the analyzer splits ("re-send") need all its
        pieces; ``lenient`` keeps a term that does not fit a field's type from
        failing the whole search.
        """
        return [
            {
                "multi_match": {
                    "query": term,
                    "fields": SEARCH_FIELDS,
                    "operator": "and",
                    "lenient": True,
                }
            }
            for term in self.terms
        ]


def compile_terms(text: str, max_terms: int) -> CompiledQuery:
    """Split ``text`` into distinct terms (case-insensitively), keeping the first ``max_terms``."""
    limit = max(1, max_terms)
    seen: set[str] = set()
    terms: list[str] = []
    ignored: list[str] = []
    for word in _TERM.findall(text):
        if word in OPERATOR_WORDS or word.casefold() in seen:
            continue
        seen.add(word.casefold())
        (terms if len(terms) < limit else ignored).append(word)
    return CompiledQuery(tuple(terms), tuple(ignored))


# --- The question's parts, compiled to one bool query --------------------------------------

# The text a sender name may contribute to an address pattern: letters, digits, '.', '-'
# (no '*' or '?', so a name can never widen its own pattern).
_ADDRESS_PIECE = re.compile(r"[^a-z0-9.-]+")
MAX_SENDER_CLAUSES = 3
MAX_SYNONYMS = 3


class TextMode:
    """How many of the searched words an email must contain (the relaxation steps)."""

    ALL = "all"  # every word (the strict query)
    ALL_BUT_ONE = "all_but_one"  # the least informative word may be missing
    HALF = "half"  # at least half of the words


@dataclass(frozen=True)
class QueryParts:
    """Everything one search asks for, as data: compiled to bounded clauses, never to syntax.

    ``owner_id`` is required and always a filter. Each filter field adds at most a
    handful of clauses; the words add one clause each (plus at most
    ``MAX_SYNONYMS`` alternatives), at most ``max_terms`` of them (``compile_terms``).
    """

    owner_id: str
    terms: tuple[str, ...] = ()
    synonyms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    text_mode: str = TextMode.ALL
    fuzzy: bool = False
    senders: tuple[str, ...] = ()
    category: str | None = None
    label: str | None = None
    attachment: bool = False
    attachment_suffixes: tuple[str, ...] = ()
    unread: bool = False
    from_me: bool | None = None  # True: only the owner's own mail; False: never it
    window_days: int | None = None
    start: str | None = None  # ISO day, inclusive
    end: str | None = None  # ISO day, exclusive
    has_unsubscribe: bool = False
    sender_domains_only: bool = False  # named senders by their own domain only (tried first)


def _fuzziness(term: str) -> int:
    """Edits a fuzzy term may differ by: none under 5 letters (one edit makes another word)."""
    return 0 if len(term) < 5 else (1 if len(term) < 9 else 2)


def _term_clause(term: str, synonyms: tuple[str, ...], fuzzy: bool) -> dict[str, Any]:
    match: dict[str, Any] = {
        "query": term,
        "fields": SEARCH_FIELDS,
        "operator": "and",
        "lenient": True,
    }
    if fuzzy and _fuzziness(term):
        match["fuzziness"] = _fuzziness(term)
    clause: dict[str, Any] = {"multi_match": match}
    if not synonyms:
        return clause
    alternatives = [
        {"multi_match": {"query": s, "fields": SEARCH_FIELDS, "type": "phrase", "lenient": True}}
        for s in synonyms[:MAX_SYNONYMS]
    ]
    return {"bool": {"should": [clause, *alternatives], "minimum_should_match": 1}}


def _address(value: str) -> dict[str, Any]:
    return {"wildcard": {"from_address": {"value": value, "case_insensitive": True}}}


def is_name(sender: str) -> bool:
    """A sender named by name ("Northwind", "Priya Raman"), not by an address or domain."""
    lowered = sender.strip()
    return "@" not in lowered and not ("." in lowered and " " not in lowered)


def sender_clause(sender: str, *, domain_only: bool = False) -> dict[str, Any]:
    """One sender, as the person named it: an address, a domain, or a name.

    A name matches an address whose domain is that name (``@northwind.`` or
    ``.northwind.``: "Northwind" finds jobs@careers.northwind.example), the
    display name (all its words), or, for one word, any address containing it
    ("Priya" finds priya.raman@...). ``domain_only`` keeps just the domain
    match: the search tries it first, so "Contoso" means contoso.example's mail
    rather than Contoso Books' receipts whenever the organisation has a domain.
    """
    lowered = sender.casefold().strip()
    if "@" in lowered:
        return {"term": {"from_address": lowered}}
    piece = _ADDRESS_PIECE.sub("", lowered)
    if not is_name(sender):
        should = [_address(f"*@{piece}"), _address(f"*.{piece}")]
        return {"bool": {"should": should, "minimum_should_match": 1}}
    first = _ADDRESS_PIECE.sub("", lowered.split()[0]) if lowered.split() else ""
    domain = [_address(f"*@{first}.*"), _address(f"*.{first}.*")] if len(first) >= 3 else []
    if domain_only:
        return {"bool": {"should": domain or [{"match_none": {}}], "minimum_should_match": 1}}
    name = {"match": {"from_name": {"query": sender, "operator": "and", "lenient": True}}}
    should = [name, *domain]
    if " " not in lowered and len(piece) >= 3:
        should.append(_address(f"*{piece}*"))
    return {"bool": {"should": should, "minimum_should_match": 1}}


def _required(n: int, mode: str) -> int:
    if mode == TextMode.ALL_BUT_ONE:
        return max(1, n - 1)
    if mode == TextMode.HALF:
        return max(1, (n + 1) // 2)
    return n


def build_bool(parts: QueryParts) -> dict[str, Any]:
    """The whole query: owner and every named filter in ``filter``, the words scored."""
    if not parts.owner_id:
        raise ValueError("a search needs its owner's id")
    filters: list[dict[str, Any]] = [{"term": {"owner_id": parts.owner_id}}]
    must_not: list[dict[str, Any]] = []
    date_range: dict[str, str] = {}
    if parts.window_days is not None:
        date_range["gte"] = f"now-{int(parts.window_days)}d"
    if parts.start:
        date_range["gte"] = parts.start
    if parts.end:
        date_range["lt"] = parts.end
    if date_range:
        filters.append({"range": {"received_at": date_range}})
    must: list[dict[str, Any]] = []
    if parts.senders:
        clauses = [
            sender_clause(s, domain_only=parts.sender_domains_only)
            for s in parts.senders[:MAX_SENDER_CLAUSES]
        ]
        filters.append(clauses[0] if len(clauses) == 1 else {"bool": {"should": clauses}})
    if parts.category:
        filters.append({"term": {"category": parts.category}})
    if parts.label:
        filters.append({"term": {"labels": parts.label}})
    if parts.attachment or parts.attachment_suffixes:
        filters.append({"term": {"has_attachment": True}})
    if parts.attachment_suffixes:
        names = [
            {"wildcard": {"attachment_names.keyword": {"value": f"*{s}", "case_insensitive": True}}}
            for s in parts.attachment_suffixes
        ]
        filters.append({"bool": {"should": names, "minimum_should_match": 1}})
    if parts.unread:
        unread = [{"term": {"unread": True}}, {"term": {"labels": "Unread"}}]
        filters.append({"bool": {"should": unread, "minimum_should_match": 1}})
    if parts.has_unsubscribe:
        bulk = [{"term": {"has_unsubscribe": True}}, {"exists": {"field": "list_unsubscribe"}}]
        filters.append({"bool": {"should": bulk, "minimum_should_match": 1}})
    mine: list[dict[str, Any]] = [{"term": {"from_me": True}}, {"term": {"labels": "Sent"}}]
    if parts.from_me is True:
        filters.append({"bool": {"should": mine, "minimum_should_match": 1}})
    elif parts.from_me is False:
        must_not.extend(mine)
    query: dict[str, Any] = {"bool": {"filter": filters}}
    if must_not:
        query["bool"]["must_not"] = must_not
    if must:
        query["bool"]["must"] = must
    if parts.terms:
        synonyms = dict(parts.synonyms)
        clauses = [_term_clause(t, synonyms.get(t, ()), parts.fuzzy) for t in parts.terms]
        needed = _required(len(clauses), parts.text_mode)
        if needed >= len(clauses):
            query["bool"]["must"] = must + clauses
        else:
            query["bool"]["should"] = clauses
            query["bool"]["minimum_should_match"] = needed
    return query
