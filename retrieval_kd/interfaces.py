"""The few interfaces every teacher, student and index implements.

``Scorer`` is what teachers implement (and cross-encoder / ColBERT students, so that a trained
student can teach the next one). ``Encoder`` is what bi-encoder and ColBERT students implement.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Scorer(Protocol):
    """Scores candidate passages for queries.

    Scores are raw (higher = more relevant) with no hidden normalisation: a teacher's own
    calibration is the job of ``EnsembleTeacher`` or of the loss.
    """

    def score(self, queries: list[str], passages: list[list[str]]) -> list[np.ndarray]:
        """Score ``passages[i]`` against ``queries[i]``.

        Shapes:
            queries: Q strings; passages: Q lists of K_i strings (ragged).
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
