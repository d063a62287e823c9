"""ListMLE (Plackett-Luce likelihood of the teacher's order) and its PLD-weighted variant.

ListMLE: Xia, Liu, Wang, Zhang, Li (2008), "Listwise Approach to Learning to Rank: Theory and
Algorithm", ICML. Teacher-confidence weighting: Bassam, Zhu, Bian (2025), "PLD: A
Choice-Theoretic List-Wise Knowledge Distillation", arXiv:2506.12542.
"""

from __future__ import annotations

import torch
from torch import Tensor

from retrieval_kd.losses._masking import (
    check_choice,
    check_positive,
    masked_log_softmax,
    masked_mean,
    prepare_group,
)

WEIGHTINGS = ("none", "teacher", "teacher_conditional")


def _reverse_logcumsumexp(x: Tensor) -> Tensor:
    """out[:, k] = logsumexp(x[:, k:]). Shapes: [B, K] -> [B, K]."""
    return x.flip(-1).logcumsumexp(dim=-1).flip(-1)


def listmle(
    student_scores: Tensor,
    teacher_scores: Tensor,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    weighting: str = "none",
    temperature: float = 1.0,
    teacher_temperature: float = 1.0,
    positives_first: bool = False,
) -> Tensor:
    r"""Negative Plackett-Luce log-likelihood, under the student, of the teacher's permutation.

    Let ``π`` sort the real entries of a group by teacher score, best first (ties by column;
    with ``positives_first`` the positives come first, as in PLD's "teacher-optimal"
    permutation with the true label first). With ``x = s / τ`` and ``n`` real entries:

    .. math::
        \mathcal{L}_b = \sum_{k=1}^{n} \alpha_k \Big(
            \log \sum_{j \ge k} e^{x_{\pi_j}} - x_{\pi_k} \Big),\qquad
        \mathcal{L} = \operatorname{mean}_b \mathcal{L}_b

    over the rows with a real entry. The weight ``α_k`` of choice step ``k`` is:

    - ``"none"``: 1 (plain ListMLE);
    - ``"teacher"``: the teacher's softmax probability of the chosen item,
      ``softmax(t / τ_t)_{π_k}`` (PLD: confident choices weigh more);
    - ``"teacher_conditional"``: the teacher's probability of the chosen item among the
      remaining ones, ``e^{t_{π_k}/τ_t} / Σ_{j ≥ k} e^{t_{π_j}/τ_t}``.

    The last step (one item left) always contributes 0. Only orders and softmaxes of scores
    enter, so adding a constant to a row of the student or of the teacher changes nothing.

    Args:
        student_scores: student scores.
        teacher_scores: teacher scores (only their order, and the weights, are used).
        labels: used only with ``positives_first`` (positives are ``labels > 0``; None = col 0).
        mask: True = real entry; padded entries are not part of the permutation.
        weighting: "none", "teacher" or "teacher_conditional".
        temperature: student temperature τ (> 0).
        teacher_temperature: τ_t (> 0) of the teacher weights.
        positives_first: put the positives first in the permutation.

    Returns:
        Scalar loss.

    Shapes:
        student_scores, teacher_scores, labels, mask: [B, K] -> scalar.

    Example:
        >>> s = torch.tensor([[0.0, 0.0, 0.0]])
        >>> t = torch.tensor([[3.0, 2.0, 1.0]])
        >>> # uniform student: log 3 + log 2 + 0 = 1.7918
        >>> round(float(listmle(s, t)), 4)
        1.7918
    """
    check_choice("weighting", weighting, WEIGHTINGS)
    check_positive("temperature", temperature)
    check_positive("teacher_temperature", teacher_temperature)
    group = prepare_group(student_scores, teacher_scores, labels, mask)
    s, t = group.student, group.teacher
    assert t is not None
    # Real entries by teacher score, padding last; with positives_first a second stable sort
    # on the positive flag moves the positives (still in teacher order) to the front.
    order = torch.argsort(
        t.masked_fill(~group.mask, float("-inf")), dim=-1, descending=True, stable=True
    )
    if positives_first:
        flag = group.positive.gather(1, order).to(torch.int8)
        order = order.gather(1, torch.argsort(flag, dim=-1, descending=True, stable=True))
    real = group.mask.gather(1, order)  # real entries form a prefix
    x = (s / temperature).gather(1, order)
    floor = torch.finfo(x.dtype).min
    steps = _reverse_logcumsumexp(x.masked_fill(~real, floor)) - x  # [B, K]
    if weighting == "none":
        alpha = torch.ones_like(steps)
    else:
        u = (t / teacher_temperature).gather(1, order).masked_fill(~real, floor)
        if weighting == "teacher":
            alpha = masked_log_softmax(u, real).exp()
        else:
            alpha = (u - _reverse_logcumsumexp(u)).exp()
    per_row = torch.where(real, alpha * steps, torch.zeros_like(steps)).sum(dim=-1)
    return masked_mean(per_row, group.mask.any(dim=-1))
