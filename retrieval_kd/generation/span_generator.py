"""Queries without an LLM: a sentence or a span of words drawn from the passage itself.

Inverse Cloze Task (Lee et al. 2019, "Latent Retrieval for Weakly Supervised Open Domain Question
Answering") takes a sentence of a passage as a pseudo-query for it; Contriever (Izacard et al.
2022, "Unsupervised Dense Information Retrieval with Contrastive Learning") crops random spans.
Both cost nothing next to an LLM (thousands of passages a second on one core), so they fit
machines where generation is too slow, and they are the comparison that says what an LLM adds.

Unlike ICT the sentence is not removed from the passage: passages are corpus documents read by
id, identical for every stage. The pseudo-query therefore overlaps its source word for word, a
lexical signal the teacher's BM25 member sees at once; the teacher's dense member and the other
candidates still decide which near-duplicates rank next.

Kinds:
    ``sentence``: one sentence of the body (title left out) with ``min_words``..``max_words``
    words, drawn at random; ``span``: a random window of ``min_words``..``max_words`` consecutive
    words of the body; ``title``: the document's title (one query per document, when it has
    one). Draws are seeded per (seed, doc id, output index), so a resumed or re-sharded run
    draws the same queries.

Example:
    >>> g = SpanQueryGenerator("sentence", min_words=3, max_words=12, seed=0)
    >>> g.generate(["d1"], [""], ["Aspirin thins blood. It blocks platelet COX enzymes."], 1)
    [['Aspirin thins blood.']]
"""

from __future__ import annotations

import re
import zlib
from typing import Any

import numpy as np

from retrieval_kd.errors import InputError

SPAN_KINDS = ("sentence", "span", "title")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=\S)")


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``: split after ``.!?`` and white space, whatever the case next
    (lower-cased corpora such as Cranfield write "slipstream . an experimental ..."). An
    abbreviation ("et al. found") splits too; the length bounds drop such fragments.

    Example:
        >>> split_sentences("wings stall . an experiment followed! Did it? yes.")
        ['wings stall .', 'an experiment followed!', 'Did it?', 'yes.']
    """
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


class SpanQueryGenerator:
    """Pseudo-queries cut from the passage (see the module docstring).

    Args:
        kind: ``sentence``, ``span`` or ``title``.
        min_words / max_words: length bounds of a sentence, or of a span's window.
        seed: seeds every draw (with the doc id and output index).
    """

    needs_cleaning = False  # outputs are text of the passage: nothing to strip

    def __init__(
        self, kind: str = "sentence", min_words: int = 4, max_words: int = 32, seed: int = 0
    ):
        if kind not in SPAN_KINDS:
            raise InputError(f"unknown span generator kind {kind!r}; choose one of {SPAN_KINDS}")
        if min_words < 1 or max_words < min_words:
            raise InputError(f"need 1 <= min_words <= max_words, got {min_words} and {max_words}")
        self.kind = kind
        self.min_words = min_words
        self.max_words = max_words
        self.seed = seed

    def _rng(self, doc_id: str, j: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, zlib.crc32(doc_id.encode("utf-8")), j])

    def _one(self, doc_id: str, title: str, body: str, j: int) -> str:
        rng = self._rng(doc_id, j)
        if self.kind == "title":
            return title.strip() if j == 0 else ""
        if self.kind == "sentence":
            sentences = split_sentences(body)
            fit = [s for s in sentences if self.min_words <= len(s.split()) <= self.max_words]
            if not fit:  # no sentence of the right length: the first max_words words
                fit = [" ".join(body.split()[: self.max_words])] if body.split() else [""]
            return fit[int(rng.integers(len(fit)))]
        words = body.split()
        if not words:
            return ""
        width = int(rng.integers(self.min_words, self.max_words + 1))
        width = min(width, len(words))
        start = int(rng.integers(0, len(words) - width + 1))
        return " ".join(words[start : start + width])

    def generate(
        self, doc_ids: list[str], titles: list[str], bodies: list[str], n: int
    ) -> list[list[str]]:
        """``n`` pseudo-queries per document (``title``: at most one).

        Shapes:
            doc_ids, titles, bodies: P each -> P lists of n strings ("" when none).
        """
        return [
            [self._one(d, t, b, j) for j in range(n)]
            for d, t, b in zip(doc_ids, titles, bodies, strict=True)
        ]

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "span",
            "span_kind": self.kind,
            "min_words": self.min_words,
            "max_words": self.max_words,
            "seed": self.seed,
        }
