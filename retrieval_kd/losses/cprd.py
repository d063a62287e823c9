"""CPRD: contrastive partial ranking distillation over the teacher's top-m hard negatives.

Chen, Ma, Zhang, Qi, Yuan, Li, Pu, Shan, Qi, Hu (2024), "How to Make Cross Encoder a Good
Teacher for Efficient Image-Text Retrieval?", CVPR, arXiv:2407.07479. Their finding: only the
relative order among the hard negatives carries transferable knowledge, so the student learns
the teacher's order of its top-m negatives through a contrastive (Plackett-Luce) objective,
next to the usual contrastive loss on the positive.
"""

from __future__ import annotations

import torch
from torch import Tensor

from retrieval_kd.errors import RKDError
from retrieval_kd.losses._masking import (
    check_non_negative,
    check_positive,
    masked_mean,
    prepare_group,
)
from retrieval_kd.losses.info_nce import info_nce


def cprd(
    student_scores: Tensor,
    teacher_scores: Tensor,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    top_m: int = 8,
    temperature: float = 1.0,
    margin: float = 0.0,
    cprd_weight: float = 1.0,
    contrastive_temperature: float | None = None,
) -> dict[str, Tensor]:
    r"""Contrastive partial ranking distillation plus InfoNCE on the positive.

    In each group sort the negatives (real, non-positive entries) by teacher score,
    ``n_1 > n_2 > … > n_m`` with ``m = min(top_m, #negatives)``. For every ``i < m``:

    .. math::
        \ell_{b,i} = -\log \frac{e^{s(q_b, n_i)/\tau}}{\sum_{j=i}^{m} e^{s(q_b, n_j)/\tau}}

    kept only when ``t(q_b, n_i) − t(q_b, n_{i+1}) ≥ δ`` (``δ = margin``; near-ties carry no
    order). ``cprd`` is the mean of the kept terms over the batch, ``contrastive`` is
    :func:`~retrieval_kd.losses.info_nce.info_nce` over the group at ``contrastive_temperature``
    (default ``τ``), and ``loss = contrastive + cprd_weight · cprd``. Negatives below rank m
    never enter the ``cprd`` term, so their order (for teacher and student) does not matter;
    ties in the teacher's scores are broken by column.

    Args:
        student_scores: student scores.
        teacher_scores: teacher scores.
        labels: positives are ``labels > 0``; None = column 0 is the positive.
        mask: True = real entry.
        top_m: number m (>= 2) of the teacher's hardest negatives whose order is distilled.
        temperature: τ (> 0) of the ranking term.
        margin: δ (>= 0), minimum teacher gap to the next negative for a term to count.
        cprd_weight: weight (>= 0) of the ranking term in ``loss``.
        contrastive_temperature: τ of the InfoNCE term; None = ``temperature``.

    Returns:
        ``{"cprd": ranking term, "contrastive": InfoNCE term, "loss": total}``, all scalars.

    Shapes:
        student_scores, teacher_scores, labels, mask: [B, K] -> dict of scalars.

    Example:
        >>> s = torch.tensor([[2.0, 1.0, 0.0, 5.0]])
        >>> t = torch.tensor([[9.0, 3.0, 2.0, 1.0]])
        >>> # negatives by teacher: cols 1, 2, 3; m = 2 keeps cols 1, 2:
        >>> # cprd = -log(e^1 / (e^1 + e^0)) = 0.3133
        >>> out = cprd(s, t, top_m=2)
        >>> round(float(out["cprd"]), 4)
        0.3133
    """
    if isinstance(top_m, bool) or not isinstance(top_m, int) or top_m < 2:
        raise RKDError(f"top_m must be an integer >= 2, got {top_m!r}")
    check_positive("temperature", temperature)
    check_non_negative("margin", margin)
    check_non_negative("cprd_weight", cprd_weight)
    tau_c = temperature if contrastive_temperature is None else contrastive_temperature
    check_positive("contrastive_temperature", tau_c)
    group = prepare_group(student_scores, teacher_scores, labels, mask)
    s, t = group.student, group.teacher
    assert t is not None
    negative = group.negative
    keys = t.masked_fill(~negative, float("-inf"))
    order = torch.argsort(keys, dim=-1, descending=True, stable=True)
    m = min(top_m, s.shape[1])
    order = order[:, :m]  # [B, m]: the real negatives come first
    selected = negative.gather(1, order)
    x = s.gather(1, order) / temperature
    t_sel = t.gather(1, order)
    floor = torch.finfo(x.dtype).min
    x_filled = x.masked_fill(~selected, floor)
    # tail_lse[:, i] = logsumexp_{j >= i} x_j over the selected negatives
    tail_lse = x_filled.flip(-1).logcumsumexp(dim=-1).flip(-1)
    terms = tail_lse[:, :-1] - x[:, :-1]  # [B, m-1], one per i < m
    has_next = selected[:, 1:]  # the next one is selected too (so i is, as well)
    gap_ok = (t_sel[:, :-1] - t_sel[:, 1:]) >= margin
    ranking = masked_mean(terms, has_next & gap_ok)
    contrastive = info_nce(s, None, group.positive, group.mask, temperature=tau_c)
    return {
        "cprd": ranking,
        "contrastive": contrastive,
        "loss": contrastive + cprd_weight * ranking,
    }
