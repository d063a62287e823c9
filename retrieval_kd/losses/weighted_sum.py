"""A weighted sum of losses that reports every term, so a trainer can log each one."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor

from retrieval_kd.errors import RKDError

LossFn = Callable[..., "Tensor | dict[str, Tensor]"]


def _check_weight(name: str, weight: Any) -> float:
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not math.isfinite(weight):
        raise RKDError(f"loss term {name!r}: weight must be a finite number, got {weight!r}")
    if weight < 0:
        raise RKDError(f"loss term {name!r}: weight must be >= 0, got {weight!r}")
    return float(weight)


class WeightedSum:
    r"""``loss = Σ_name weight_name · term_name``, returned with every term for logging.

    .. math::
        \mathcal{L} = \sum_{n} w_n \, \mathcal{L}_n(s, t, \text{labels}, \text{mask})

    Built from a spec mapping a term name to one of:

    - a number: the weight of the registered loss of that name (default hyper-parameters);
    - a mapping: ``"weight"`` (default 1.0), optionally ``"loss"`` (the registered name, when
      the term name differs, e.g. two KL terms at different temperatures), and the loss's
      hyper-parameters;
    - a tuple ``(callable, weight)``: any function with the common loss signature.

    Every term gets the same ``(student_scores, teacher_scores, labels, mask)``. The returned
    dict holds each term's unweighted value under its name, the parts of a term that returns a
    dict (CPRD) under ``"<name>/<part>"``, and the weighted total under ``"loss"``.

    Shapes:
        student_scores, teacher_scores, labels, mask: [B, K] -> dict of scalars.

    Example:
        >>> import torch
        >>> ws = WeightedSum({"mse": 0.5, "kl": {"weight": 2.0, "temperature": 1.0}})
        >>> s = torch.tensor([[1.0, 0.0]])
        >>> t = torch.tensor([[1.0, 0.0]])
        >>> out = ws(s, t)  # identical scores: every term is 0
        >>> sorted(out), float(out["loss"])
        (['kl', 'loss', 'mse'], 0.0)
    """

    def __init__(self, spec: Mapping[str, Any]) -> None:
        from retrieval_kd.losses.registry import get_loss  # registry imports this module

        if not isinstance(spec, Mapping) or not spec:
            raise RKDError(f"a loss spec must be a non-empty mapping name -> weight, got {spec!r}")
        self.terms: dict[str, LossFn] = {}
        self.weights: dict[str, float] = {}
        for name, term in spec.items():
            if not isinstance(name, str) or not name or name == "loss" or "/" in name:
                raise RKDError(f"bad loss term name {name!r} (non-empty, not 'loss', no '/')")
            if isinstance(term, tuple):
                if len(term) != 2 or not callable(term[0]):
                    raise RKDError(f"loss term {name!r}: a tuple must be (callable, weight)")
                self.terms[name], weight = term
            elif isinstance(term, Mapping):
                kwargs = dict(term)
                weight = kwargs.pop("weight", 1.0)
                registered = kwargs.pop("loss", name)
                self.terms[name] = get_loss(registered, **kwargs)
            else:
                weight = term
                self.terms[name] = get_loss(name)
            self.weights[name] = _check_weight(name, weight)

    def __call__(
        self,
        student_scores: Tensor,
        teacher_scores: Tensor | None = None,
        labels: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Evaluate every term and the weighted total. Shapes: [B, K] inputs -> dict of scalars."""
        out: dict[str, Tensor] = {}
        total: Tensor | None = None
        for name, fn in self.terms.items():
            value = fn(student_scores, teacher_scores, labels, mask)
            if isinstance(value, Mapping):
                for part, part_value in value.items():
                    if part != "loss":
                        out[f"{name}/{part}"] = part_value
                value = value["loss"]
            out[name] = value
            weighted = self.weights[name] * value
            total = weighted if total is None else total + weighted
        assert total is not None
        out["loss"] = total
        return out

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={w:g}*{self.terms[n]!r}" for n, w in self.weights.items())
        return f"WeightedSum({inner})"
