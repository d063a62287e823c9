"""The few interfaces every teacher, student and index implements.

``Scorer`` is what teachers implement (and cross-encoder / ColBERT students, so that a trained
student can teach the next one). ``Encoder`` is what bi-encoder and ColBERT students implement.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

import numpy as np

from retrieval_kd.errors import InputError


@runtime_checkable
class Scorer(Protocol):
    """Scores candidate passages for queries.

    Scores are raw (higher = more relevant) with no hidden normalisation: a teacher's own
    calibration is the job of ``EnsembleTeacher`` or of the loss.
    """

    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """Score ``passages[i]`` against ``queries[i]``.

        Model-based scorers read the texts and ignore the ids; a scorer whose scores are looked
        up (a candidate run's own BM25 scores, say) reads the ids and ignores the texts. Callers
        that have the ids (the scoring loop does) always pass them.

        Shapes:
            queries: Q strings; passages: Q lists of K_i strings (ragged);
            query_ids: Q ids; doc_ids: Q lists of K_i ids.
            returns: Q float arrays, the i-th of shape [K_i].
        """
        ...

    def describe(self) -> dict[str, Any]:
        """What identifies this scorer in a manifest: model id, revision/hash, template, ..."""
        ...


@runtime_checkable
class Encoder(Protocol):
    """Encodes queries and passages into vectors (bi-encoder) or token matrices (ColBERT)."""

    def encode_queries(self, texts: list[str]) -> Any:
        """Shapes: texts Q strings -> Tensor[Q, D] (ColBERT: token matrices + masks)."""
        ...

    def encode_passages(self, texts: list[str]) -> Any:
        """Shapes: texts P strings -> Tensor[P, D] (ColBERT: token matrices + masks)."""
        ...

    def similarity(self, queries: Any, passages: Any) -> Any:
        """Shapes: [Q, D] x [P, D] -> [Q, P] scores."""
        ...


def check_groups(queries: list[str], passages: list[list[str]]) -> None:
    """Raise ``InputError`` unless there is one passage list per query (``Scorer.score``'s input).

    Shapes:
        queries: Q strings; passages: Q lists of K_i strings.
    """
    if len(queries) != len(passages):
        raise InputError(f"{len(queries)} queries but {len(passages)} passage lists")


def split_groups(flat: np.ndarray, passages: list[list[str]]) -> list[np.ndarray]:
    """Cut the scores of all pairs, flattened query by query, back into one array per query.

    Shapes:
        flat: [sum K_i]; passages: Q lists of K_i  ->  Q arrays [K_i] (views of ``flat``).
    """
    bounds = np.cumsum([0] + [len(group) for group in passages])
    return [flat[bounds[i] : bounds[i + 1]] for i in range(len(passages))]


def score_groups_by_pairs(
    score_pairs: Callable[[list[tuple[str, str]]], np.ndarray],
    queries: list[str],
    passages: list[list[str]],
) -> list[np.ndarray]:
    """``Scorer.score`` for a model that scores (query, passage) pairs: flatten, score, split.

    Shapes:
        queries: Q strings; passages: Q lists of K_i strings -> Q arrays [K_i].
    """
    check_groups(queries, passages)
    pairs = [(q, p) for q, group in zip(queries, passages, strict=True) for p in group]
    return split_groups(score_pairs(pairs), passages)
