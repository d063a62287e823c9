"""What every trainable student offers the trainer, whatever its architecture.

The trainer only ever asks a student for differentiable scores of query groups; how a student
turns texts into scores (dot products of pooled vectors, MaxSim over token vectors, a
cross-encoder's logit) is its own business. So one trainer and one family of losses serve the
bi-encoder, ColBERT and cross-encoder students alike.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from retrieval_kd.errors import InputError


def group_size(queries: list[str], passages: list[list[str]]) -> int:
    """K of a batch of groups; every query needs the same non-zero number of passages."""
    if len(queries) != len(passages):
        raise InputError(f"{len(queries)} queries but {len(passages)} passage groups")
    sizes = {len(group) for group in passages}
    if len(sizes) != 1 or 0 in sizes:
        raise InputError(f"every query needs the same non-zero number of passages, got {sizes}")
    return sizes.pop()


@runtime_checkable
class TrainableStudent(Protocol):
    """A student the trainer can optimise, save and reload.

    Attributes:
        model: the ``torch.nn.Module`` holding every trainable parameter (what the optimizer
            sees and what a checkpoint saves).
    """

    model: torch.nn.Module

    def score_groups(self, queries: list[str], passages: list[list[str]]) -> torch.Tensor:
        """Differentiable scores of each query against its own group of passages.

        Shapes:
            queries: B strings; passages: B lists of K strings (same K for every row).
            returns: Tensor[B, K].
        """
        ...

    def score_all(
        self, queries: list[str], passages: list[str], gather: bool = False
    ) -> torch.Tensor:
        """Differentiable scores of every query against every passage (in-batch negatives).

        ``gather``: also against the passages of every other process of the process group
        (rank order, gradients kept; :mod:`retrieval_kd.training.distributed`).

        Shapes:
            queries: B strings; passages: N strings. returns: Tensor[B, N] ([B, W*N] when
            gathering over W processes).

        Raises:
            NotImplementedError: for students that cannot score cross products cheaply
                (cross-encoders).
        """
        ...

    def save(self, folder: str | Path) -> None:
        """Save so that plain sentence-transformers / transformers loads the folder."""
        ...

    def describe(self) -> dict[str, Any]:
        """Settings that identify the student (base model, pooling, similarity, lengths...)."""
        ...
