"""Preference targets for the score losses: pairwise probabilities and LLM orders as tensors.

An LLM teacher may give no per-passage score at all: a pairwise teacher gives ``P(i > j)`` for
some pairs (PairDistill: Huang, Hsu, Chen 2024, "PairDistill: Pairwise Relevance Distillation for
Dense Retrieval", EMNLP; duoT5: Pradeep, Nogueira, Lin 2021, "The Expando-Mono-Duo Design
Pattern for Text Ranking with Pretrained Sequence-to-Sequence Models"), a listwise one an order
(RankGPT: Sun et al. 2023; FIRST: Reddy et al. 2024). The existing losses consume them as:

- pairwise targets -> :func:`pairwise_targets` -> ``ranknet_from_pairs(scores, pair_index,
  target_prob, mask)`` (RankNet against the teacher's probabilities);
- an order -> :func:`ranking_targets` -> rank-derived teacher scores, best first in column 0,
  for ``listmle`` (Plackett-Luce likelihood of the order), ``cprd`` (column 0, the LLM's top-1,
  is the positive; the order of the rest is distilled) and ``listwise_kl`` (softmax of the
  rank-derived scores);
- pairwise targets aggregated per passage (:func:`bradley_terry`, :func:`win_rate`) -> any
  score loss.

Everything here is a pure function of the stored targets; no model is involved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from retrieval_kd.errors import InputError, RKDError

RANK_TRANSFORMS = ("neg_rank", "reciprocal_rank")
AGGREGATES = ("bradley_terry", "win_rate")


def rank_scores(n: int, transform: str = "neg_rank", k: float = 60.0) -> np.ndarray:
    """Scores of ranks ``1..n`` (best first): ``-rank`` or ``1 / (k + rank)`` (RRF's, k = 60).

    Shapes:
        returns float32 [n], strictly decreasing.

    Example:
        >>> rank_scores(3).tolist()
        [-1.0, -2.0, -3.0]
    """
    ranks = np.arange(1, n + 1, dtype=np.float64)
    if transform == "neg_rank":
        return (-ranks).astype(np.float32)
    if transform == "reciprocal_rank":
        if k < 0:
            raise RKDError(f"reciprocal_rank needs k >= 0, got {k}")
        return (1.0 / (k + ranks)).astype(np.float32)
    raise RKDError(f"rank transform must be one of {RANK_TRANSFORMS}, got {transform!r}")


def _check_pairs(n: int, pairs: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    if len(pairs) != len(probs):
        raise InputError(f"{len(pairs)} pairs but {len(probs)} probabilities")
    if pairs.size and (pairs.min() < 0 or pairs.max() >= n or (pairs[:, 0] == pairs[:, 1]).any()):
        raise InputError(f"pairs must index two different items of 0..{n - 1}")
    if not np.all((probs >= 0) & (probs <= 1)):
        raise InputError("pairwise probabilities must lie in [0, 1]")
    return pairs, probs


def win_rate(n: int, pairs: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """Mean probability of winning over each item's comparisons (NaN for an item in none).

    Shapes:
        pairs: [P, 2] item indices (i, j); probs: [P] P(i > j) -> float64 [n].

    Example:
        >>> win_rate(3, [[0, 1], [0, 2], [1, 2]], [0.9, 0.8, 0.6]).round(2).tolist()
        [0.85, 0.35, 0.3]
    """
    pairs, probs = _check_pairs(n, pairs, probs)
    wins = np.zeros(n)
    games = np.zeros(n)
    np.add.at(wins, pairs[:, 0], probs)
    np.add.at(wins, pairs[:, 1], 1.0 - probs)
    np.add.at(games, pairs.reshape(-1), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(games > 0, wins / np.maximum(games, 1), np.nan)


def bradley_terry(
    n: int,
    pairs: np.ndarray,
    probs: np.ndarray,
    *,
    prior: float = 0.1,
    iterations: int = 200,
    tol: float = 1e-8,
) -> np.ndarray:
    r"""Log-strengths of a Bradley-Terry model fitted to soft pairwise outcomes.

    Bradley & Terry (1952); the MM algorithm of Hunter (2004), "MM algorithms for generalized
    Bradley-Terry models", Ann. Statist. Each comparison ``(i, j, p)`` counts ``p`` wins for
    ``i`` and ``1 - p`` for ``j``. Every item also plays ``prior`` games against a fixed anchor
    of strength 1 and wins half of them, which keeps strengths finite when an item wins (or
    loses) every comparison and ties unconnected items to a common scale. The MM update

    .. math::
        \pi_i \leftarrow \frac{W_i + \alpha/2}{\sum_j \frac{n_{ij}}{\pi_i + \pi_j}
            + \frac{\alpha}{\pi_i + 1}}

    increases the likelihood at every step. Items in no comparison get log-strength 0 (the
    anchor's); callers usually leave them out.

    Args:
        n: number of items.
        pairs: item indices ``(i, j)`` of each comparison.
        probs: ``P(i > j)`` of each comparison.
        prior: ``α``, games against the anchor (> 0).
        iterations: most MM steps.
        tol: stop when no log-strength moves more than this.

    Returns:
        float64 [n] log-strengths; ``P(i > j) = σ(θ_i − θ_j)`` under the fit.

    Shapes:
        pairs: [P, 2]; probs: [P] -> [n].

    Example:
        >>> theta = bradley_terry(3, [[0, 1], [1, 2], [0, 2]], [0.9, 0.9, 0.9])
        >>> np.argsort(-theta).tolist()
        [0, 1, 2]
    """
    if not prior > 0:
        raise RKDError(f"prior must be > 0, got {prior}")
    pairs, probs = _check_pairs(n, pairs, probs)
    wins = np.full(n, prior / 2.0)
    np.add.at(wins, pairs[:, 0], probs)
    np.add.at(wins, pairs[:, 1], 1.0 - probs)
    strength = np.ones(n)
    i, j = pairs[:, 0], pairs[:, 1]
    for _ in range(iterations):
        inv = 1.0 / (strength[i] + strength[j])
        denom = prior / (strength + 1.0)
        np.add.at(denom, i, inv)
        np.add.at(denom, j, inv)
        updated = wins / denom
        step = np.abs(np.log(updated) - np.log(strength)).max(initial=0.0)
        strength = updated
        if step < tol:
            break
    return np.log(strength)


@dataclass(frozen=True)
class PairwiseTargets:
    """Pairwise targets of a batch of queries, for ``ranknet_from_pairs``.

    Attributes:
        doc_ids: per row, the documents of its columns (padding columns have no id).
        mask: True = real column.
        pair_index: rows ``(row, i, j)``; target_prob: ``P(column i > column j)``.

    Shapes:
        mask: [B, K] bool; pair_index: [P, 3] long; target_prob: [P] float32.
    """

    doc_ids: list[list[str]]
    mask: Tensor
    pair_index: Tensor
    target_prob: Tensor


def pairwise_targets(records: Sequence[Any], *, both_directions: bool = False) -> PairwiseTargets:
    """Turn stored pairwise records into ``ranknet_from_pairs`` inputs.

    Args:
        records: objects with ``doc_ids`` (K_b ids), ``pairs`` (int [P_b, 2] indices into
            ``doc_ids``) and ``probs`` (float [P_b]), e.g. ``PreferenceRecord``.
        both_directions: also add ``(j, i, 1 - p)`` for every pair (the loss is symmetric
            under that swap, so this only reweights; off by default).

    Returns:
        Columns are each record's ``doc_ids`` (padded to the longest); score the same columns
        with the student and call ``ranknet_from_pairs(scores, t.pair_index, t.target_prob,
        t.mask)``.

    Example:
        >>> from types import SimpleNamespace as R
        >>> t = pairwise_targets([R(doc_ids=["a", "b"], pairs=[[0, 1]], probs=[0.7])])
        >>> t.pair_index.tolist(), t.target_prob.tolist(), t.mask.tolist()
        ([[0, 0, 1]], [0.699999988079071], [[True, True]])
    """
    width = max((len(r.doc_ids) for r in records), default=0)
    mask = torch.zeros((len(records), width), dtype=torch.bool)
    index: list[np.ndarray] = []
    probs: list[np.ndarray] = []
    for row, record in enumerate(records):
        mask[row, : len(record.doc_ids)] = True
        pairs, p = _check_pairs(len(record.doc_ids), record.pairs, record.probs)
        rows = np.full((len(pairs), 1), row)
        index.append(np.hstack([rows, pairs]))
        probs.append(p)
        if both_directions:
            index.append(np.hstack([rows, pairs[:, ::-1]]))
            probs.append(1.0 - p)
    pair_index = np.concatenate(index) if index else np.zeros((0, 3))
    target = np.concatenate(probs) if probs else np.zeros(0)
    return PairwiseTargets(
        doc_ids=[list(r.doc_ids) for r in records],
        mask=mask,
        pair_index=torch.as_tensor(pair_index, dtype=torch.long).reshape(-1, 3),
        target_prob=torch.as_tensor(target, dtype=torch.float32),
    )


@dataclass(frozen=True)
class RankingTargets:
    """A batch of teacher orders as rank-derived teacher scores (best first in column 0).

    Shapes:
        teacher_scores: [B, K] float32 (padding 0); mask: [B, K] bool.
    """

    doc_ids: list[list[str]]
    teacher_scores: Tensor
    mask: Tensor
    transform: str


def ranking_targets(
    orders: Sequence[Sequence[str]], *, transform: str = "neg_rank", k: float = 60.0
) -> RankingTargets:
    """Turn teacher orders (doc ids, best first) into teacher scores for score losses.

    Column ``c`` of row ``b`` is the document at rank ``c + 1`` of order ``b``; its teacher score
    is :func:`rank_scores`. ``listmle`` and ``cprd`` read only the order (and ``cprd`` takes
    column 0, the teacher's top-1, as the positive when no labels are given); ``listwise_kl``
    reads the scores, so the transform (and the loss temperature) sets how peaked its target is.

    Example:
        >>> ranking_targets([["b", "a"]]).teacher_scores.tolist()
        [[-1.0, -2.0]]
    """
    width = max((len(o) for o in orders), default=0)
    scores = torch.zeros((len(orders), width), dtype=torch.float32)
    mask = torch.zeros((len(orders), width), dtype=torch.bool)
    for row, order in enumerate(orders):
        if len(set(order)) != len(order):
            raise InputError(f"order {row} repeats a document id")
        scores[row, : len(order)] = torch.from_numpy(rank_scores(len(order), transform, k))
        mask[row, : len(order)] = True
    return RankingTargets([list(o) for o in orders], scores, mask, transform)
