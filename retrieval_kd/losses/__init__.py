"""Distillation losses as pure functions of scores.

A loss never holds a model: it takes the scores a student produced (bi-encoder dot products,
ColBERT MaxSim scores, cross-encoder logits alike) and, for distillation, the teacher's scores
for the same candidates, and returns a scalar tensor (or, for losses with several parts, a dict
of scalars that includes ``"loss"``). The common signature is::

    loss(student_scores, teacher_scores, labels=None, mask=None, *, <hyper-parameters>)

Conventions shared by every loss:

- **Groups.** Row ``b`` of the ``[B, K]`` inputs holds the ``K`` candidates of query ``b``.
- **Positives.** The positives of a row are its real entries with ``labels > 0``. When
  ``labels`` is None, column 0 is the single positive and columns 1.. are negatives.
  Negatives are the real entries that are not positives.
- **Mask.** ``mask`` is a bool ``[B, K]`` tensor, True = real entry, for ragged groups. Padded
  entries affect neither the value nor the gradient, whatever they hold (even ``inf``/``nan``).
- **Reduction.** Each loss averages over its natural units (pairs, rows, entries, ...), said in
  its docstring; with none in the batch it returns 0, still attached to the graph.
- **Precision.** Half-precision inputs are computed in float32; float64 stays float64.

Shapes:
    student_scores, teacher_scores, labels, mask: [B, K] -> scalar (or dict of scalars).
    ``info_nce`` also takes ``[B, N]`` scores against every passage of the batch.

Example:
    >>> import torch
    >>> s = torch.tensor([[3.0, 1.0, 0.0]])
    >>> t = torch.tensor([[5.0, 4.0, 1.0]])
    >>> float(margin_mse(s, t))
    1.0
    >>> sorted(build_loss({"margin_mse": 1.0, "kl": 0.5})(s, t))
    ['kl', 'loss', 'margin_mse']
"""

from __future__ import annotations

from retrieval_kd.losses.cprd import cprd
from retrieval_kd.losses.graded_bce import graded_bce
from retrieval_kd.losses.info_nce import in_batch_positive_index, info_nce
from retrieval_kd.losses.listmle import listmle
from retrieval_kd.losses.listwise_kl import listwise_kl
from retrieval_kd.losses.margin_mse import margin_mse
from retrieval_kd.losses.pointwise_mse import pointwise_mse
from retrieval_kd.losses.ranknet import ranknet, ranknet_from_pairs
from retrieval_kd.losses.registry import (
    BoundLoss,
    build_loss,
    get_loss,
    hyper_parameters,
    loss_names,
)
from retrieval_kd.losses.weighted_sum import WeightedSum

__all__ = [
    "BoundLoss",
    "WeightedSum",
    "build_loss",
    "cprd",
    "get_loss",
    "graded_bce",
    "hyper_parameters",
    "in_batch_positive_index",
    "info_nce",
    "listmle",
    "listwise_kl",
    "loss_names",
    "margin_mse",
    "pointwise_mse",
    "ranknet",
    "ranknet_from_pairs",
]
