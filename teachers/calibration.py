"""Per-query score calibration, so teachers on different scales can be combined.

A cross-encoder gives logits or sigmoid probabilities, a bi-encoder cosine similarities, an LLM
log-likelihoods, BM25 unbounded positive scores. Calibrating each teacher's scores *within each
query's candidate list* puts them on one scale before they are weighted and summed (the usual
practice in hybrid retrieval score fusion, e.g. Bruch et al. 2023, "An Analysis of Fusion
Functions for Hybrid Retrieval").
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import rankdata

from retrieval_kd.errors import RKDError


def zscore(scores: np.ndarray) -> np.ndarray:
    """``(s - mean) / std`` within the list; a constant list maps to zeros.

    Example:
        >>> zscore(np.array([1.0, 2.0, 3.0])).round(4).tolist()
        [-1.2247, 0.0, 1.2247]
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < 2:  # an empty or one-candidate list (numpy warns on std of nothing)
        return np.zeros_like(scores)
    std = scores.std()
    return np.zeros_like(scores) if std == 0 else (scores - scores.mean()) / std


def minmax(scores: np.ndarray) -> np.ndarray:
    """``(s - min) / (max - min)`` into [0, 1]; a constant list maps to 0.5.

    Example:
        >>> minmax(np.array([2.0, 4.0, 3.0])).tolist()
        [0.0, 1.0, 0.5]
    """
    scores = np.asarray(scores, dtype=np.float64)
    span = scores.max() - scores.min() if scores.size else 0.0
    return np.full_like(scores, 0.5) if span == 0 else (scores - scores.min()) / span


def rank(scores: np.ndarray) -> np.ndarray:
    """Normalised rank into [0, 1]: the best scores 1, the worst 0, ties share their mean rank.

    Example:
        >>> rank(np.array([10.0, 30.0, 20.0, 20.0])).tolist()
        [0.0, 1.0, 0.5, 0.5]
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.size < 2:
        return np.full_like(scores, 0.5)
    return (rankdata(scores, method="average") - 1.0) / (scores.size - 1)


def identity(scores: np.ndarray) -> np.ndarray:
    """Raw scores (only for teachers already on one scale)."""
    return np.asarray(scores, dtype=np.float64)


CALIBRATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "zscore": zscore,
    "minmax": minmax,
    "rank": rank,
    "none": identity,
}


def get_calibration(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """The calibration function called ``name`` (zscore, minmax, rank, none)."""
    try:
        return CALIBRATIONS[name]
    except KeyError:
        raise RKDError(
            f"unknown calibration {name!r}; choose one of {', '.join(CALIBRATIONS)}"
        ) from None
