"""Pairwise RankNet distillation on the teacher's order, and on explicit pairwise targets.

RankNet: Burges et al. (2005), "Learning to Rank using Gradient Descent", ICML. Distilling the
teacher's pairwise preferences into a retriever follows PairDistill: Huang, Hsu, Chen (2024),
"PairDistill: Pairwise Relevance Distillation for Dense Retrieval", EMNLP.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from retrieval_kd.errors import InputError
from retrieval_kd.losses._masking import (
    check_choice,
    check_non_negative,
    check_positive,
    compute_dtype,
    masked_mean,
    prepare_group,
    resolve_mask,
)

TARGETS = ("hard", "soft")


def ranknet(
    student_scores: Tensor,
    teacher_scores: Tensor,
    labels: Tensor | None = None,
    mask: Tensor | None = None,
    *,
    target: str = "hard",
    temperature: float = 1.0,
    margin: float = 0.0,
) -> Tensor:
    r"""Binary cross-entropy of ``σ(s_i − s_j)`` against the teacher's preference of i over j.

    Pairs are the ordered pairs ``(i, j)`` of real entries of one group whose teacher margin
    exceeds ``δ = margin``:

    .. math::
        \mathcal{P} = \{(b, i, j) : t_{bi} - t_{bj} > \delta\},\qquad
        \mathcal{L} = \frac{1}{|\mathcal{P}|} \sum_{\mathcal{P}}
            -\big[y \log \sigma(s_{bi} - s_{bj}) + (1 - y) \log(1 - \sigma(s_{bi} - s_{bj}))\big]

    with ``y = 1`` (``target="hard"``) or ``y = σ((t_{bi} − t_{bj}) / τ)`` (``target="soft"``,
    ``τ = temperature``). Each unordered pair appears once, in the teacher's preferred direction
    (``σ(−x) = 1 − σ(x)`` makes the other direction redundant); teacher ties never count.
    Labels are not used (accepted for the common signature).

    Args:
        student_scores: student scores.
        teacher_scores: teacher scores.
        labels: ignored.
        mask: True = real entry.
        target: "hard" (y = 1) or "soft" (y = σ(Δt / τ)).
        temperature: ``τ`` (> 0) of the soft target.
        margin: ``δ`` (>= 0): pairs whose teacher margin is not above it are skipped.

    Returns:
        Scalar loss (0 when no pair passes the margin).

    Shapes:
        student_scores, teacher_scores, labels, mask: [B, K] -> scalar.

    Example:
        >>> s = torch.tensor([[1.0, 1.0]])
        >>> t = torch.tensor([[2.0, 0.0]])
        >>> # one pair (0, 1), σ(0) = 0.5: -log 0.5 = 0.6931
        >>> round(float(ranknet(s, t)), 4)
        0.6931
    """
    check_choice("target", target, TARGETS)
    check_positive("temperature", temperature)
    check_non_negative("margin", margin)
    group = prepare_group(student_scores, teacher_scores, labels, mask)
    s, t = group.student, group.teacher
    assert t is not None
    d_s = s[:, :, None] - s[:, None, :]  # [B, K, K]: s_i - s_j
    d_t = t[:, :, None] - t[:, None, :]
    keep = group.mask[:, :, None] & group.mask[:, None, :] & (d_t > margin)
    if target == "hard":
        y = torch.ones_like(d_s)
    else:
        y = torch.sigmoid(d_t / temperature)
    bce = F.binary_cross_entropy_with_logits(d_s, y, reduction="none")
    return masked_mean(bce, keep)


def ranknet_from_pairs(
    student_scores: Tensor,
    pair_index: Tensor,
    target_prob: Tensor,
    mask: Tensor | None = None,
) -> Tensor:
    r"""RankNet against explicit pairwise targets, e.g. from an LLM pairwise teacher.

    .. math::
        \mathcal{L} = \frac{1}{P} \sum_{p=1}^{P}
            \mathrm{BCE}\big(\sigma(s_{b_p i_p} - s_{b_p j_p}),\ y_p\big)

    where ``pair_index[p] = (b_p, i_p, j_p)`` and ``y_p = target_prob[p]`` is the teacher's
    probability that candidate ``i_p`` beats ``j_p`` for query ``b_p``.

    Args:
        student_scores: student scores.
        pair_index: integer rows ``(row, i, j)``.
        target_prob: P(i ranked above j), in [0, 1].
        mask: True = real entry; a pair that points at a padded entry is an error.

    Returns:
        Scalar loss (0 when P = 0).

    Raises:
        InputError: bad shapes, indices out of range or on padding, targets outside [0, 1].

    Shapes:
        student_scores: [B, K]; pair_index: [P, 3] integer; target_prob: [P];
        mask: [B, K] bool -> scalar.

    Example:
        >>> s = torch.tensor([[2.0, 0.0, 1.0]])
        >>> pairs = torch.tensor([[0, 0, 1], [0, 2, 1]])
        >>> # BCE(σ(2), 1) = 0.1269, BCE(σ(1), 0.5) = 0.8133; mean = 0.4701
        >>> round(float(ranknet_from_pairs(s, pairs, torch.tensor([1.0, 0.5]))), 4)
        0.4701
    """
    if student_scores.dim() != 2:
        raise InputError(
            f"student_scores must have shape [B, K], got {tuple(student_scores.shape)}"
        )
    if pair_index.dim() != 2 or pair_index.shape[1] != 3:
        raise InputError(f"pair_index must have shape [P, 3], got {tuple(pair_index.shape)}")
    if pair_index.is_floating_point() or pair_index.dtype == torch.bool:
        raise InputError(f"pair_index must be an integer tensor, got {pair_index.dtype}")
    if target_prob.shape != (pair_index.shape[0],):
        raise InputError(
            f"target_prob has shape {tuple(target_prob.shape)}, expected ({pair_index.shape[0]},)"
        )
    batch, k = student_scores.shape
    full_mask = resolve_mask(mask, student_scores.shape, student_scores.device)
    dtype = compute_dtype(student_scores)
    s = student_scores.to(dtype).masked_fill(~full_mask, 0.0)
    if pair_index.shape[0] == 0:
        return (s * 0.0).sum()
    pair_index = pair_index.to(student_scores.device).long()
    row, i, j = pair_index.unbind(dim=1)
    if row.min() < 0 or row.max() >= batch or min(i.min(), j.min()) < 0:
        raise InputError(f"pair_index has a row outside [0, {batch}) or a negative column")
    if max(i.max(), j.max()) >= k:
        raise InputError(f"pair_index has a column outside [0, {k})")
    if not bool((full_mask[row, i] & full_mask[row, j]).all()):
        raise InputError("pair_index points at a padded entry (mask is False there)")
    y = target_prob.to(device=s.device, dtype=dtype)
    if not bool(((y >= 0) & (y <= 1)).all()):
        raise InputError("target_prob must lie in [0, 1]")
    logits = s[row, i] - s[row, j]
    return F.binary_cross_entropy_with_logits(logits, y)
