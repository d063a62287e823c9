"""Losses by name, so that a YAML config can pick them: ``get_loss`` and ``build_loss``."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

from retrieval_kd.errors import RKDError
from retrieval_kd.losses.cprd import cprd
from retrieval_kd.losses.graded_bce import graded_bce
from retrieval_kd.losses.info_nce import info_nce
from retrieval_kd.losses.listmle import listmle
from retrieval_kd.losses.listwise_kl import listwise_kl
from retrieval_kd.losses.margin_mse import margin_mse
from retrieval_kd.losses.pointwise_mse import pointwise_mse
from retrieval_kd.losses.ranknet import ranknet
from retrieval_kd.losses.weighted_sum import LossFn, WeightedSum

# name -> (function, preset hyper-parameters)
_LOSSES: dict[str, tuple[LossFn, dict[str, Any]]] = {
    "margin_mse": (margin_mse, {}),
    "kl": (listwise_kl, {}),
    "ranknet": (ranknet, {}),
    "info_nce": (info_nce, {}),
    "cprd": (cprd, {}),
    "listmle": (listmle, {}),
    "pld": (listmle, {"weighting": "teacher", "positives_first": True}),
    "graded_bce": (graded_bce, {}),
    "mse": (pointwise_mse, {}),
}
# keyword-only arguments that are per-batch inputs, not hyper-parameters
_PER_CALL = {"positive_index"}


@dataclass(frozen=True)
class BoundLoss:
    """A registered loss with its hyper-parameters fixed; call it like the loss itself.

    Shapes:
        student_scores, teacher_scores, labels, mask: [B, K] -> scalar or dict of scalars.
    """

    name: str
    fn: LossFn
    kwargs: dict[str, Any] = field(default_factory=dict)

    def __call__(
        self,
        student_scores: Tensor,
        teacher_scores: Tensor | None = None,
        labels: Tensor | None = None,
        mask: Tensor | None = None,
        **per_call: Any,
    ) -> Tensor | dict[str, Tensor]:
        return self.fn(student_scores, teacher_scores, labels, mask, **self.kwargs, **per_call)

    def describe(self) -> dict[str, Any]:
        """What identifies this loss in a manifest: its name and hyper-parameters."""
        return {"name": self.name, **self.kwargs}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.kwargs.items())
        return f"{self.name}({args})"


def loss_names() -> list[str]:
    """The registered loss names, sorted."""
    return sorted(_LOSSES)


def hyper_parameters(name: str) -> dict[str, Any]:
    """Hyper-parameters of a registered loss with their defaults (presets applied).

    Example:
        >>> hyper_parameters("kl")
        {'temperature': 1.0, 'teacher_temperature': None, 'rescale': None, 'negatives_only': False}
    """
    fn, preset = _lookup(name)
    params = inspect.signature(fn).parameters.values()
    defaults = {
        p.name: p.default
        for p in params
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _PER_CALL
    }
    return {**defaults, **preset}


def _lookup(name: str) -> tuple[LossFn, dict[str, Any]]:
    if name not in _LOSSES:
        raise RKDError(f"unknown loss {name!r}; valid names: {', '.join(loss_names())}")
    return _LOSSES[name]


def get_loss(name: str, **kwargs: Any) -> BoundLoss:
    """The loss registered as ``name`` with hyper-parameters ``kwargs`` bound.

    Raises:
        RKDError: unknown name (the message lists the valid ones) or unknown hyper-parameter
            (the message lists the loss's hyper-parameters).

    Example:
        >>> get_loss("kl", temperature=2.0)
        kl(temperature=2.0)
    """
    fn, preset = _lookup(name)
    allowed = hyper_parameters(name)
    unknown = sorted(set(kwargs) - set(allowed))
    if unknown:
        valid = ", ".join(allowed) or "none"
        raise RKDError(
            f"unknown hyper-parameter(s) {', '.join(unknown)} for loss {name!r}; valid: {valid}"
        )
    return BoundLoss(name, fn, {**preset, **kwargs})


def build_loss(spec: str | Mapping[str, Any]) -> WeightedSum:
    """A :class:`WeightedSum` from a config spec such as ``{"margin_mse": 1.0, "kl": {...}}``.

    A bare name stands for ``{name: 1.0}``. See :class:`WeightedSum` for the spec's form.

    Raises:
        RKDError: unknown loss, unknown hyper-parameter, or a bad weight.

    Example:
        >>> build_loss({"margin_mse": 1.0, "kl": {"weight": 0.5, "temperature": 2.0}})
        WeightedSum(margin_mse=1*margin_mse(), kl=0.5*kl(temperature=2.0))
    """
    if isinstance(spec, str):
        spec = {spec: 1.0}
    return WeightedSum(spec)
