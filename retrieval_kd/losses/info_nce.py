"""InfoNCE with in-batch negatives plus hard negatives (the contrastive loss of DPR and kin).

van den Oord, Li, Vinyals (2018), "Representation Learning with Contrastive Predictive Coding";
for retrieval with in-batch negatives: Karpukhin et al. (2020), "Dense Passage Retrieval for
Open-Domain Question Answering", EMNLP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from retrieval_kd.errors import InputError
from retrieval_kd.losses._masking import check_positive, masked_mean, prepare_group


def in_batch_positive_index(
    batch_size: int, group_size: int, device: torch.device | str | None = None
) -> Tensor:
    """Column of each query's positive when all ``B * K`` passages of a batch are flattened.

    Passage ``k`` of query ``b`` sits at column ``b * K + k``, and the positive is its first
    passage (``k = 0``), so the positive of row ``b`` is column ``b * K``.

    Shapes:
        returns: [B] long.

    Example:
        >>> in_batch_positive_index(3, 4)
        tensor([0, 4, 8])
    """
    return torch.arange(batch_size, device=device) * group_size


def info_nce(
    student_scores: Tensor,
    teacher_scores: Tensor | None = None,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    temperature: float = 1.0,
    positive_index: Tensor | None = None,
) -> Tensor:
    r"""Contrastive loss: each positive against all the negatives of its row, at temperature τ.

    For in-batch negatives the trainer scores every query against every passage of the batch
    (``N = B * K`` columns: the query's own positive and hard negatives plus every other query's
    passages) and says where each row's positive is, through ``positive_index`` (see
    :func:`in_batch_positive_index`) or ``labels``. Over the group only (``N = K``) the package
    convention applies: labels > 0, or column 0 when neither is given. For a positive ``p`` of
    row ``b`` with negatives ``N_b`` (real, non-positive entries of the row):

    .. math::
        \ell_{bp} = -\log \frac{e^{s_{bp}/\tau}}{e^{s_{bp}/\tau}
            + \sum_{n \in N_b} e^{s_{bn}/\tau}},\qquad
        \mathcal{L} = \operatorname{mean}_{(b, p)} \ell_{bp}

    With one positive per row this is cross-entropy over the row. Other positives of the same
    row are left out of each other's denominators (they are not negatives); mask out columns
    that must not act as negatives (duplicates, false negatives). Rows without a positive are
    skipped. ``teacher_scores`` is unused (accepted, may be None, for the common signature).
    Use ``τ ≈ 0.05`` for cosine similarities, ``τ = 1`` for raw dot products.

    Args:
        student_scores: scores of each query against the N candidate passages.
        teacher_scores: ignored.
        labels: positives are ``labels > 0``.
        mask: True = real entry (also: False for a column that must not be a negative).
        temperature: τ (> 0).
        positive_index: the single positive column of each row (instead of labels).

    Returns:
        Scalar loss.

    Raises:
        InputError: both labels and positive_index given, or an index out of range.

    Shapes:
        student_scores, labels, mask: [B, N]; positive_index: [B] long;
        teacher_scores: anything or None -> scalar.

    Example:
        >>> s = torch.tensor([[2.0, 0.0, 0.0]])
        >>> # -log(e^2 / (e^2 + 2)) = log(1 + 2 e^-2) = 0.2395
        >>> round(float(info_nce(s)), 4)
        0.2395
    """
    check_positive("temperature", temperature)
    if positive_index is not None:
        if labels is not None:
            raise InputError("give either labels or positive_index to info_nce, not both")
        if student_scores.dim() != 2:
            raise InputError(f"student_scores must be [B, N], got {tuple(student_scores.shape)}")
        batch, n = student_scores.shape
        if positive_index.shape != (batch,) or positive_index.is_floating_point():
            raise InputError(
                f"positive_index must be an integer tensor of shape ({batch},), "
                f"got {positive_index.dtype} {tuple(positive_index.shape)}"
            )
        index = positive_index.to(student_scores.device).long()
        if batch and (index.min() < 0 or index.max() >= n):
            raise InputError(f"positive_index has a column outside [0, {n})")
        labels = F.one_hot(index, n)
    group = prepare_group(student_scores, None, labels, mask, need_teacher=False)
    x = group.student / temperature
    floor = torch.finfo(x.dtype).min
    negatives_lse = x.masked_fill(~group.negative, floor).logsumexp(dim=-1, keepdim=True)
    # -log(e^x_p / (e^x_p + e^lse)) = softplus(lse - x_p); 0 when the row has no negative.
    terms = F.softplus(negatives_lse - x)
    return masked_mean(terms, group.positive)
