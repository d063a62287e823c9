"""Graded binary cross-entropy: each candidate's sigmoid score against a graded target.

BiXSE: Tsirigotis, Adlakha, Monteiro, Courville, Taslakian (2025), "BiXSE: Improving Dense
Retrieval via Probabilistic Graded Relevance Distillation", arXiv:2508.06781: pointwise
BCE of ``σ(a·s + b)`` against graded relevance probabilities (e.g. from an LLM teacher)
instead of binary labels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from retrieval_kd.errors import InputError
from retrieval_kd.losses._masking import (
    check_choice,
    check_positive,
    masked_mean,
    positives_from,
    prepare_group,
)

TARGETS = ("sigmoid", "prob", "labels")


def graded_bce(
    student_scores: Tensor,
    teacher_scores: Tensor | None = None,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    target: str = "sigmoid",
    temperature: float | Tensor = 1.0,
    bias: float | Tensor = 0.0,
    teacher_temperature: float = 1.0,
    max_grade: float = 1.0,
) -> Tensor:
    r"""Mean binary cross-entropy of ``σ(s / τ + b)`` against a target probability per entry.

    .. math::
        \hat{p}_{bk} = \sigma(s_{bk} / \tau + b),\qquad
        \mathcal{L} = \operatorname{mean}_{\text{real } (b, k)}
            -\big[y_{bk} \log \hat{p}_{bk} + (1 - y_{bk}) \log(1 - \hat{p}_{bk})\big]

    (``σ(a·s + b)`` with ``a = 1/τ``; ``temperature`` and ``bias`` may be learnable scalar
    tensors that the trainer owns.) The target ``y`` is chosen by ``target``:

    - ``"sigmoid"``: ``y = σ(t / τ_t)``, teacher logits mapped to probabilities;
    - ``"prob"``: ``y = t``, the teacher already gives probabilities in [0, 1];
    - ``"labels"``: ``y = labels / max_grade``, graded relevance labels in [0, max_grade]
      (with labels None: column 0 → 1, the rest → 0). The teacher is not needed.

    Args:
        student_scores: student scores.
        teacher_scores: teacher scores or probabilities (unused with ``target="labels"``).
        labels: graded labels (for ``target="labels"``).
        mask: True = real entry.
        target: "sigmoid", "prob" or "labels".
        temperature: τ (> 0) of the student: ``a = 1/τ``.
        bias: b of the student.
        teacher_temperature: τ_t (> 0) for ``target="sigmoid"``.
        max_grade: the highest grade (> 0) for ``target="labels"``.

    Returns:
        Scalar loss.

    Raises:
        InputError: a missing teacher, probabilities outside [0, 1], grades outside
            [0, max_grade].

    Shapes:
        student_scores, teacher_scores, labels, mask: [B, K] -> scalar.

    Example:
        >>> s = torch.tensor([[0.0, 0.0]])
        >>> p = torch.tensor([[1.0, 0.5]])
        >>> # both predictions 0.5: (-log 0.5 + -log 0.5) / 2 = 0.6931
        >>> round(float(graded_bce(s, p, target="prob")), 4)
        0.6931
    """
    check_choice("target", target, TARGETS)
    check_positive("temperature", temperature)
    check_positive("teacher_temperature", teacher_temperature)
    check_positive("max_grade", max_grade)
    group = prepare_group(
        student_scores, teacher_scores, None, mask, need_teacher=target != "labels"
    )
    zeros = torch.zeros_like(group.student)
    if target == "sigmoid":
        assert group.teacher is not None
        y = torch.sigmoid(group.teacher / teacher_temperature)
    elif target == "prob":
        assert group.teacher is not None
        y = group.teacher
        if not bool(((y >= 0) & (y <= 1)).all()):
            raise InputError("graded_bce(target='prob') needs teacher_scores in [0, 1]")
    elif labels is None:
        y = positives_from(None, group.mask).to(zeros.dtype)
    else:
        if labels.shape != group.mask.shape:
            raise InputError(f"labels has shape {tuple(labels.shape)}, expected [B, K]")
        grades = labels.to(device=zeros.device, dtype=zeros.dtype).masked_fill(~group.mask, 0.0)
        if not bool(((grades >= 0) & (grades <= max_grade)).all()):
            raise InputError(f"graded_bce(target='labels') needs labels in [0, {max_grade}]")
        y = grades / max_grade
    logits = group.student / temperature + bias
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return masked_mean(bce, group.mask)
