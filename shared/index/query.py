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
