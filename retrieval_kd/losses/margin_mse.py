"""Margin-MSE: match the student's score margins to the teacher's.

Hofstätter, Althammer, Schröder, Sertkan, Hanbury (2020), "Improving Efficient Neural Ranking
Models with Cross-Architecture Knowledge Distillation", arXiv:2010.02666.
"""

from __future__ import annotations

import torch
from torch import Tensor

from retrieval_kd.losses._masking import check_positive, masked_mean, prepare_group


def margin_mse(
    student_scores: Tensor,
    teacher_scores: Tensor,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    all_pairs: bool = False,
    temperature: float = 1.0,
) -> Tensor:
    r"""Mean squared error between student and teacher margins over (positive, negative) pairs.

    For every group (row) and every pair of a positive ``p`` and a negative ``n`` of that group:

    .. math::
        \mathcal{L} = \frac{1}{|\mathcal{P}|} \sum_{(b, p, n) \in \mathcal{P}}
            \big((s_{bp} - s_{bn}) - (t_{bp} - t_{bn})\big)^2

    The mean runs over all pairs of the batch (a group with 2 positives and 3 negatives adds 6
    pairs). With one positive and one negative per row this is the original triplet loss. With
    ``all_pairs=True`` every unordered pair of real entries counts (labels are then ignored),
    which distils all of the teacher's margins, not only positive-vs-negative ones.

    Because only differences enter, adding a constant to a row of the student (or of the
    teacher) changes nothing. The student's scores are divided by ``temperature`` first
    (``s / τ``), so a cosine student (scores in [-1, 1]) is compared on the scale of its
    contrastive logits (``τ = 0.05``, i.e. x20, as in sentence-transformers'
    ``MultipleNegativesRankingLoss``) rather than against teacher margins 20 times its range.

    Args:
        student_scores: student scores (dot products, MaxSim, logits ...).
        teacher_scores: teacher scores for the same candidates.
        labels: positives are ``labels > 0``; None = column 0 is the positive.
        mask: True = real entry; padded entries are ignored.
        all_pairs: use every pair of real entries instead of (positive, negative) pairs.
        temperature: the student's scores are divided by this (> 0) before the margins.

    Returns:
        Scalar loss (0 when the batch has no pair).

    Shapes:
        student_scores, teacher_scores, labels, mask: [B, K] -> scalar.

    Example:
        >>> s = torch.tensor([[3.0, 1.0, 0.0]])
        >>> t = torch.tensor([[5.0, 4.0, 1.0]])
        >>> # margins student (2, 3), teacher (1, 4): ((2-1)^2 + (3-4)^2) / 2 = 1
        >>> margin_mse(s, t)
        tensor(1.)
    """
    check_positive("temperature", temperature)
    group = prepare_group(student_scores, teacher_scores, labels, mask)
    s, t = group.student / temperature, group.teacher
    assert t is not None
    diff = (s[:, :, None] - s[:, None, :]) - (t[:, :, None] - t[:, None, :])  # [B, K, K]
    if all_pairs:
        real = group.mask[:, :, None] & group.mask[:, None, :]
        upper = torch.ones_like(real[0]).triu(diagonal=1)
        keep = real & upper
    else:
        keep = group.positive[:, :, None] & group.negative[:, None, :]
    return masked_mean(diff.pow(2), keep)
