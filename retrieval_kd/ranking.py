"""The project's one ordering rule: score descending, ties broken by doc id descending.

This is trec_eval's order (``form_res_rels.c``, ``comp_sim_docno``: it re-sorts each query's
results by score and then by docno, both descending, ignoring the rank column), so a run ranks
the same whether it is evaluated here, by trec_eval, or read back from its file. Every place
that orders documents uses these functions: run files and evaluation
(``retrieval_kd.data.runs``, ``evaluation.conventions``), the candidate plan and the score store
(``retrieval_kd.store``), fusion, training groups (which read the store's order) and the
late-interaction index's top k. Doc ids compare by code point, which for UTF-8 equals C's
``strcmp``.

Example:
    >>> ranked({"a": 1.0, "b": 1.0, "c": 2.0})
    ['c', 'b', 'a']
    >>> order(np.array([1.0, 1.0, 2.0]), ["a", "b", "c"]).tolist()
    [2, 1, 0]
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping, Sequence

import numpy as np


def rank_key(doc_id: str, score: float) -> tuple[float, str]:
    """The sort key of one document: larger keys rank first (``sorted(..., reverse=True)``)."""
    return (score, doc_id)


def ranked(scores: Mapping[str, float], depth: int | None = None) -> list[str]:
    """Doc ids by the rule (best first), the top ``depth`` if given (a heap for small depths)."""
    if depth is not None and depth < len(scores):
        return heapq.nlargest(depth, scores, key=lambda d: rank_key(d, scores[d]))
    return sorted(scores, key=lambda d: rank_key(d, scores[d]), reverse=True)


def tie_ranks(doc_ids: Sequence[str]) -> np.ndarray:
    """Each doc id's place in doc id descending order (0 = wins every tie). Shape: [n] int64."""
    ids = np.asarray(doc_ids, dtype=object)
    out = np.empty(len(ids), dtype=np.int64)
    out[np.argsort(ids, kind="stable")[::-1]] = np.arange(len(ids))
    return out


def order(
    scores: np.ndarray, doc_ids: Sequence[str] | None = None, *, ties: np.ndarray | None = None
) -> np.ndarray:
    """Indices that put ``scores`` in the rule's order.

    Give the ``doc_ids`` of the scores, or their ``ties`` (:func:`tie_ranks` computed once
    for a whole collection and indexed: cheaper for repeated calls).

    Shapes:
        scores: [n]; doc_ids: n strings or ties: [n] int -> [n] int64.
    """
    if ties is None:
        if doc_ids is None:
            raise ValueError("give the doc ids of the scores, or their tie ranks")
        ties = tie_ranks(doc_ids)
    return np.lexsort((ties, -np.asarray(scores, dtype=np.float64)))
