"""Checking and normalising the vectors an index is given (numpy or torch, any device)."""

from __future__ import annotations

from typing import Any

import numpy as np

from retrieval_kd.errors import RKDError
from retrieval_kd.index.storage import IndexMismatchError


def as_matrix(vectors: Any, dim: int | None = None, what: str = "vectors") -> np.ndarray:
    """``vectors`` as a C-contiguous float32 matrix, checked for shape and finite values.

    Accepts numpy arrays and anything ``np.asarray`` reads, and torch tensors (any device).

    Shapes:
        vectors: [n, D] -> returns [n, D] float32.
    """
    if hasattr(vectors, "detach"):  # a torch tensor, possibly on a GPU
        vectors = vectors.detach().float().cpu().numpy()
    array = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32))
    if array.ndim != 2:
        raise RKDError(f"{what} must be a 2-D [n, D] matrix, got shape {array.shape}")
    if dim is not None and array.shape[1] != dim:
        raise IndexMismatchError(f"{what} are {array.shape[1]}-d but the index holds {dim}-d")
    if not np.isfinite(array).all():
        raise RKDError(f"{what} contain NaN or infinite values")
    return array


def normalised(array: np.ndarray) -> np.ndarray:
    """A row-L2-normalised copy (zero rows stay zero). Shapes: [n, D] -> [n, D]."""
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return (array / np.maximum(norms, 1e-12)).astype(np.float32)
