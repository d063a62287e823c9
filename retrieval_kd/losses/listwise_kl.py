"""Listwise KL divergence between the teacher's and the student's softmax over a group.

RocketQAv2: Ren et al. (2021), "RocketQAv2: A Joint Training Method for Dense Passage Retrieval
and Passage Re-ranking", EMNLP (dynamic listwise distillation). The temperature and its
``τ²`` rescale follow Hinton, Vinyals, Dean (2015), "Distilling the Knowledge in a Neural
Network", as does sentence-transformers' ``DistillKLDivLoss``. ``negatives_only`` is the
non-target part of Decoupled Knowledge Distillation: Zhao et al. (2022), "Decoupled Knowledge
Distillation", CVPR (NCKD: the KL between the two distributions renormalised over the
non-target classes).
"""

from __future__ import annotations

import torch
from torch import Tensor

from retrieval_kd.losses._masking import (
    check_positive,
    masked_log_softmax,
    masked_mean,
    prepare_group,
)


def listwise_kl(
    student_scores: Tensor,
    teacher_scores: Tensor,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    temperature: float = 1.0,
    teacher_temperature: float | None = None,
    rescale: bool | None = None,
    negatives_only: bool = False,
) -> Tensor:
    r"""KL(teacher ‖ student) between the softmax distributions over each group, times ``τ²``
    when the student's temperature softens (``τ > 1``).

    .. math::
        p^t_b = \mathrm{softmax}(t_b / \tau_t),\quad p^s_b = \mathrm{softmax}(s_b / \tau),\quad
        \mathcal{L} = \tau^2 \cdot \frac{1}{B'} \sum_b \sum_k p^t_{bk}
            \big(\log p^t_{bk} - \log p^s_{bk}\big)

    where ``τ`` is the *student* temperature ``temperature``, ``τ_t = teacher_temperature``
    (defaults to ``τ``), and ``B'`` counts the rows with at least one real entry (the
    ``batchmean`` reduction). The ``τ²`` factor is the student's: the gradient with respect
    to ``s`` carries a ``1/τ`` from the softmax and, at high temperature, another ``1/τ`` from
    the shrinking probability gaps, so ``τ²`` keeps its size comparable across temperatures.
    That argument is about softening (``τ > 1``); when ``τ < 1`` only puts a cosine student's
    scores on a logit scale (``τ = 0.05``), ``rescale=False`` drops the factor, which would
    otherwise shrink the loss 400-fold next to an InfoNCE term at the same ``τ``; the default
    (``rescale=None``) applies the factor only when ``τ > 1``.
    Labels are not used (accepted for the common signature) unless ``negatives_only``.
    Softmax makes the loss unchanged when a constant is added to a row of the student or of the
    teacher.

    ``negatives_only=True`` runs both softmaxes over each group's negatives alone (positives
    as ``labels > 0``, or column 0 without labels, are masked out): the teacher then teaches
    only how the negatives rank among themselves, and the positive's share of the mass is left
    to a label loss such as InfoNCE, which a full-group KL would pull against wherever the
    teacher is less sure of the positive than the labels are (Zhao et al.'s NCKD). Rows with
    no negative add nothing.

    Args:
        student_scores: student scores.
        teacher_scores: teacher scores.
        labels: ignored.
        mask: True = real entry; the softmax runs over real entries only.
        temperature: student temperature ``τ`` (> 0), also used for the rescale.
        teacher_temperature: teacher temperature ``τ_t`` (> 0); None = same as ``τ``.
        rescale: multiply by ``τ²`` (Hinton et al.); False for a scale-only ``τ``; None
            (default): only when ``τ > 1``, the softening case the factor is for.
        negatives_only: the KL over each group's negatives only (see above).

    Returns:
        Scalar loss.

    Shapes:
        student_scores, teacher_scores, labels, mask: [B, K] -> scalar.

    Example:
        >>> s = torch.tensor([[0.0, 0.0]])
        >>> t = torch.tensor([[0.0, 1.0986123]])  # teacher softmax = (0.25, 0.75)
        >>> # 0.25 * log(0.25 / 0.5) + 0.75 * log(0.75 / 0.5) = 0.1308
        >>> round(float(listwise_kl(s, t)), 4)
        0.1308
        >>> # negatives only: column 0 (the positive) leaves the softmax; one negative left = 0
        >>> round(float(listwise_kl(s, t, negatives_only=True)), 4)
        0.0
    """
    check_positive("temperature", temperature)
    tau_t = temperature if teacher_temperature is None else teacher_temperature
    check_positive("teacher_temperature", tau_t)
    group = prepare_group(student_scores, teacher_scores, labels, mask)
    assert group.teacher is not None
    keep = group.negative if negatives_only else group.mask
    log_p_s = masked_log_softmax(group.student / temperature, keep)
    log_p_t = masked_log_softmax(group.teacher / tau_t, keep)
    terms = torch.where(keep, log_p_t.exp() * (log_p_t - log_p_s), torch.zeros_like(log_p_s))
    per_row = terms.sum(dim=-1)
    loss = masked_mean(per_row, keep.any(dim=-1))
    if rescale is None:
        rescale = temperature > 1
    return loss * float(temperature) ** 2 if rescale else loss
