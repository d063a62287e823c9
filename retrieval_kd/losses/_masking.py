"""Shared input handling for the score-based losses: validation, masks, masked reductions.

Every loss in :mod:`retrieval_kd.losses` starts with :func:`prepare_group`, which checks the
shapes, fills padded entries with zeros (so that garbage such as ``inf``/``nan`` in the padding
reaches neither the value nor the gradient) and works out which entries are positives.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from retrieval_kd.errors import InputError, RKDError


@dataclass(frozen=True)
class Group:
    """Validated, padding-free view of one batch of candidate groups.

    Shapes:
        student: [B, K] floating, padded entries set to 0.
        teacher: [B, K] same dtype as ``student`` (padded entries 0), or None.
        mask: [B, K] bool, True = real entry.
        positive: [B, K] bool, True = real entry that is a positive.
    """

    student: Tensor
    teacher: Tensor | None
    mask: Tensor
    positive: Tensor

    @property
    def negative(self) -> Tensor:
        """[B, K] bool: real entries that are not positives."""
        return self.mask & ~self.positive


def compute_dtype(scores: Tensor) -> torch.dtype:
    """Float dtype the losses compute in: float32 at least (half inputs are upcast)."""
    if not scores.is_floating_point():
        return torch.float32
    return torch.promote_types(scores.dtype, torch.float32)


def _check_2d(name: str, value: Tensor, shape: torch.Size | None = None) -> None:
    if not isinstance(value, Tensor):
        raise InputError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != 2:
        raise InputError(f"{name} must have shape [B, K], got {tuple(value.shape)}")
    if shape is not None and value.shape != shape:
        raise InputError(
            f"{name} has shape {tuple(value.shape)}, expected {tuple(shape)} like student_scores"
        )


def resolve_mask(mask: Tensor | None, shape: torch.Size, device: torch.device) -> Tensor:
    """Return a bool mask of ``shape`` (all True when ``mask`` is None)."""
    if mask is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    _check_2d("mask", mask, shape)
    if mask.dtype != torch.bool:
        raise InputError(f"mask must be a bool tensor (True = real entry), got {mask.dtype}")
    return mask.to(device)


def positives_from(labels: Tensor | None, mask: Tensor) -> Tensor:
    """Positives under the package convention: ``labels > 0``, or column 0 when labels is None.

    Shapes:
        labels: [B, K] or None; mask: [B, K] bool -> [B, K] bool (positives among real entries).
    """
    if labels is None:
        positive = torch.zeros_like(mask)
        positive[:, 0] = True
        return positive & mask
    _check_2d("labels", labels, mask.shape)
    return (labels.to(mask.device) > 0) & mask


def prepare_group(
    student_scores: Tensor,
    teacher_scores: Tensor | None,
    labels: Tensor | None,
    mask: Tensor | None,
    *,
    need_teacher: bool = True,
) -> Group:
    """Validate the common loss inputs and return a :class:`Group` with padding zeroed.

    Shapes:
        student_scores, teacher_scores, labels, mask: [B, K] (teacher/labels/mask may be None).

    Raises:
        InputError: wrong rank or shape, non-bool mask, or a missing teacher when one is needed.
    """
    _check_2d("student_scores", student_scores)
    if student_scores.shape[1] == 0:
        raise InputError("student_scores has K = 0 candidates per group")
    dtype = compute_dtype(student_scores)
    device = student_scores.device
    full_mask = resolve_mask(mask, student_scores.shape, device)
    student = student_scores.to(dtype).masked_fill(~full_mask, 0.0)
    teacher = None
    if teacher_scores is not None:
        _check_2d("teacher_scores", teacher_scores, student_scores.shape)
        teacher = teacher_scores.to(device=device, dtype=dtype).masked_fill(~full_mask, 0.0)
    elif need_teacher:
        raise InputError("this loss needs teacher_scores, got None")
    return Group(student, teacher, full_mask, positives_from(labels, full_mask))


def masked_log_softmax(x: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    """log-softmax over the real entries of ``x``; padded entries get a huge negative value.

    The padded value is finite (``finfo.min``), never ``-inf``, so that a later
    ``where(mask, ..., 0)`` keeps gradients free of NaN.

    Shapes:
        x: [B, K]; mask: [B, K] bool -> [B, K].
    """
    filled = x.masked_fill(~mask, torch.finfo(x.dtype).min)
    return torch.log_softmax(filled, dim=dim)


def masked_mean(values: Tensor, keep: Tensor) -> Tensor:
    """Mean of ``values`` over the entries where ``keep`` is True; 0 (with a graph) if none.

    Shapes:
        values, keep: any identical shape -> scalar.
    """
    total = torch.where(keep, values, torch.zeros_like(values)).sum()
    return total / keep.sum().clamp(min=1).to(values.dtype)


def check_positive(name: str, value: float | Tensor) -> None:
    """Raise RKDError unless the hyper-parameter ``value`` is a finite number > 0."""
    number = float(value.detach()) if isinstance(value, Tensor) else value
    if not isinstance(number, int | float) or not math.isfinite(number) or number <= 0:
        raise RKDError(f"{name} must be a finite number > 0, got {value!r}")


def check_non_negative(name: str, value: float) -> None:
    """Raise RKDError unless the hyper-parameter ``value`` is a finite number >= 0."""
    if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise RKDError(f"{name} must be a finite number >= 0, got {value!r}")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise RKDError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise RKDError(f"{name} must be one of {', '.join(choices)}; got {value!r}")
