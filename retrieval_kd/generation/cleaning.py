"""Cleaning and filtering generated queries: what a small LLM writes is not yet a query.

A 135M-parameter chat model answers "write a question about this passage" with the question, but
also with preambles ("Here is a question:", "This abstract supports the claim that ..."), echoes
of the prompt ("What is the title of this passage?"), several lines, or nothing. Each raw output
goes through:

1. :func:`clean_query`: keep the first non-empty line, strip list markers, quotes and known
   preambles (a sentence that only announces the query), keep what follows them;
2. :func:`drop_reason`: ``"empty"`` (nothing left), ``"meta"`` (it talks about the passage or
   the prompt instead of asking something: "this passage", "the abstract", "the search query"),
   ``"too_short"`` / ``"too_long"`` (outside ``[min_words, max_words]`` words);
3. de-duplication: a query whose normalised text (case, spacing and punctuation folded) was
   already kept is dropped as ``"duplicate"``.

Every drop is counted by reason (:class:`FilterCounts`), for the manifest.

Example:
    >>> clean_query("Here is a question: What does aspirin do to platelets?\\nIt blocks COX.")
    'What does aspirin do to platelets?'
    >>> clean_query("The passage supports the claim that aspirin inhibits platelets.")
    'Aspirin inhibits platelets.'
    >>> drop_reason("What is the title of this passage?", 3, 64)
    'meta'
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

# A preamble announces the query instead of being it; what follows it is kept.
_PREAMBLES = [
    r"(sure|certainly|okay|ok|of course)\b[,!.:]?",
    r"(here is|here's|here are)\b[^:\n]{0,60}:",
    r"(search )?(question|claim|query|keywords?|search query|answer)\s*\d*\s*[:\-–]",
    r"[qa]\s*\d*\s*:",
    r"(the |this )?(passage|abstract|article|text|study|paper|document)\s+"
    r"(supports|refutes|suggests|states|shows|claims|asserts|concludes|finds|found|indicates|"
    r"argues|reports|demonstrates|presents|provides evidence)"
    r"(\s+(the|a|this))?(\s+(scientific|following))?(\s+(claim|statement|conclusion|idea))?"
    r"(\s+that)?[:,]?",
    r"(a|one) (possible |good |short )?(search )?(question|query|claim)( is| would be)?[:,]?",
]
_PREAMBLE_RE = re.compile(r"^\s*(" + "|".join(_PREAMBLES) + r")\s*", re.IGNORECASE)
_LIST_MARKER_RE = re.compile(r"^\s*([-*•]|\d+[.)]|[A-Za-z][.)](?=\s))\s*")
_QUOTES = "\"'“”‘’`«»"
# Talk about the passage or the prompt rather than about the passage's subject.
_META_RE = re.compile(
    r"\b(this|the|above|given|following) (passage|abstract|text|article|document|prompt)\b"
    r"|\bsearch (question|query)\b|\b(passage|abstract)\s*:",
    re.IGNORECASE,
)
_WORD_RE = re.compile(r"\w+", re.UNICODE)
DROP_REASONS = ("empty", "meta", "too_short", "too_long", "duplicate")


def clean_query(raw: str) -> str:
    """The query inside one raw generation (see the module docstring); may return ``""``."""
    lines = [line.strip() for line in raw.replace("\r", "\n").split("\n")]
    text = ""
    for line in lines:
        line = _LIST_MARKER_RE.sub("", line).strip().strip(_QUOTES).strip()
        for _ in range(3):  # "Sure! Here is a question: ..." has two preambles
            stripped = _PREAMBLE_RE.sub("", line, count=1).strip().strip(_QUOTES).strip()
            if stripped == line:
                break
            line = stripped
        if line:
            text = line
            break
    text = " ".join(text.split())
    if text and text[0].islower():
        text = text[0].upper() + text[1:]
    return text


def word_count(text: str) -> int:
    """Words (runs of letters or digits) in ``text``."""
    return len(_WORD_RE.findall(text))


def drop_reason(query: str, min_words: int, max_words: int) -> str | None:
    """Why a cleaned query is dropped (one of :data:`DROP_REASONS` but ``duplicate``), or None."""
    if not query.strip():
        return "empty"
    if _META_RE.search(query):
        return "meta"
    words = word_count(query)
    if words < min_words:
        return "too_short"
    if words > max_words:
        return "too_long"
    return None


def normalise(query: str) -> str:
    """The form two queries are compared in for de-duplication (case, spacing, punctuation)."""
    return " ".join(_WORD_RE.findall(query.lower()))


@dataclass
class FilterCounts:
    """How many raw generations came in, were kept, and were dropped for each reason."""

    raw: int = 0
    kept: int = 0
    dropped: Counter = field(default_factory=Counter)

    def to_dict(self) -> dict[str, int]:
        return {"raw": self.raw, "kept": self.kept, **{r: self.dropped[r] for r in DROP_REASONS}}


@dataclass(frozen=True)
class QueryFilter:
    """Length bounds (in words) and de-duplication of cleaned queries.

    Raises:
        InputError: ``min_words`` < 1 or ``max_words`` < ``min_words``.
    """

    min_words: int = 3
    max_words: int = 64
    dedupe: bool = True

    def __post_init__(self) -> None:
        from retrieval_kd.errors import InputError

        if self.min_words < 1 or self.max_words < self.min_words:
            raise InputError(
                f"need 1 <= min_words <= max_words, got {self.min_words} and {self.max_words}"
            )

    def apply(
        self, generated: Iterable[tuple[str, list[str]]], clean: bool = True
    ) -> tuple[list[tuple[str, int, str]], FilterCounts]:
        """Clean and filter every raw generation.

        Args:
            generated: ``(doc_id, raw outputs)`` in a fixed order (the first copy of a duplicate
                is the one kept).
            clean: run :func:`clean_query` (off for generators whose output is already clean).

        Returns:
            ``[(doc_id, index of the output, query)]`` kept, and the counts.
        """
        counts = FilterCounts()
        seen: set[str] = set()
        kept: list[tuple[str, int, str]] = []
        for doc_id, outputs in generated:
            for j, raw in enumerate(outputs):
                counts.raw += 1
                query = clean_query(raw) if clean else " ".join(raw.split())
                reason = drop_reason(query, self.min_words, self.max_words)
                if reason is None and self.dedupe:
                    key = normalise(query)
                    if key in seen:
                        reason = "duplicate"
                    seen.add(key)
                if reason is not None:
                    counts.dropped[reason] += 1
                    continue
                kept.append((doc_id, j, query))
        counts.kept = len(kept)
        return kept, counts
