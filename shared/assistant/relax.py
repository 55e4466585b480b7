"""Never a false "nothing": when the strict query finds nothing, relax it step by step.

The steps, each keeping the ones before it (so the answer can say exactly
which step found the mail):

1. ``window``: the whole window the data holds, when the question named none
   (a window the person named is kept: widening it would answer another
   question; the answer instead says how many match in all kept mail);
2. ``fuzzy``: each word may be misspelt by one or two letters;
3. ``drop_word``: every word but one must match (the rarest words weigh most
   in the ranking, so the least informative word is the one left out);
4. ``any_words``: at least half of the words.

Filters the person named (sender, category, label, attachment) are never
dropped: "emails from Globex" must not answer with mail from someone else.
Two variants go in one ``msearch`` (one request): the mildest step alone, and
every step at once; the first with hits wins and the answer names its steps.
"""

from __future__ import annotations

from dataclasses import replace

from shared.index.query import QueryParts, TextMode

WINDOW, FUZZY, DROP_WORD, ANY_WORDS = "window", "fuzzy", "drop_word", "any_words"
STEPS = (WINDOW, FUZZY, DROP_WORD, ANY_WORDS)
MAX_VARIANTS = 2  # relaxed queries searched: the mildest, then every step at once


def relaxations(
    parts: QueryParts, *, window_named: bool, kept_days: int
) -> list[tuple[tuple[str, ...], QueryParts]]:
    """The relaxed variants of ``parts``, mildest first, each with the steps it took."""
    variants: list[tuple[tuple[str, ...], QueryParts]] = []
    steps: tuple[str, ...] = ()
    current = parts
    widen = not window_named and parts.window_days is not None and parts.window_days < kept_days
    if widen:
        steps, current = (WINDOW,), replace(current, window_days=kept_days)
        variants.append((steps, current))
    if any(len(t) >= 5 for t in parts.terms):
        steps, current = (*steps, FUZZY), replace(current, fuzzy=True)
        variants.append((steps, current))
    if len(parts.terms) >= 2:
        steps, current = (*steps, DROP_WORD), replace(current, text_mode=TextMode.ALL_BUT_ONE)
        variants.append((steps, current))
    if len(parts.terms) >= 4:
        steps, current = (*steps, ANY_WORDS), replace(current, text_mode=TextMode.HALF)
        variants.append((steps, current))
    if len(variants) > MAX_VARIANTS:
        # Each variant is a full-text pass over the mail (noida-db scans every document):
        # the mildest step and all the steps together bound the cost of a "nothing".
        variants = [variants[0], variants[-1]]
    return variants


def wider(parts: QueryParts, kept_days: int) -> QueryParts | None:
    """The strict query over all kept mail: counted (not cited) when a named window found none."""
    if parts.start is None and parts.end is None and (parts.window_days or 0) >= kept_days:
        return None
    return replace(parts, window_days=kept_days, start=None, end=None)
