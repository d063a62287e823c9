"""Pointwise MSE on raw scores: the student regresses the teacher's score of each candidate.

The plain logit-matching baseline of knowledge distillation (Ba and Caruana (2014), "Do Deep
Nets Really Need to be Deep?"); in ranking it only makes sense when student and teacher scores
live on the same scale, which is why margin-based and listwise losses usually do better.
"""

from __future__ import annotations

from torch import Tensor

from retrieval_kd.losses._masking import masked_mean, prepare_group


def pointwise_mse(
    student_scores: Tensor,
    teacher_scores: Tensor,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
) -> Tensor:
    r"""Mean over real entries of ``(s − t)²``.

    .. math::
        \mathcal{L} = \frac{1}{|\{(b, k): m_{bk}\}|} \sum_{m_{bk}} (s_{bk} - t_{bk})^2

    Args:
        student_scores: student scores.
        teacher_scores: teacher scores.
        labels: ignored (accepted for the common signature).
        mask: True = real entry.

    Returns:
        Scalar loss.

    Shapes:
        student_scores, teacher_scores, labels, mask: [B, K] -> scalar.

    Example:
        >>> import torch
        >>> pointwise_mse(torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, 4.0]]))
        tensor(2.5000)
    """
    group = prepare_group(student_scores, teacher_scores, labels, mask)
    assert group.teacher is not None
    return masked_mean((group.student - group.teacher).pow(2), group.mask)
