"""False-negative handling: candidates the teacher scores almost as high as the positive.

An unjudged candidate is not a negative because nobody judged it: on SciFact the demo's teacher
ranks an unjudged passage above the judged one for 31% of the training queries, and a hard
"negative" of that kind teaches the student to push a relevant passage away. RocketQA (Qu et al.
2021) drops hard negatives a cross-encoder scores highly; NV-Retriever (Moreira et al. 2024)
keeps only negatives scored below 95% of the positive's score ("TopK-PercPos"); Tamber et al.
2025 mask negatives above 0.6x the top teacher score. sentence-transformers'
``util.mine_hard_negatives`` names the two thresholds this module uses:

- ``absolute_margin`` m (teacher units, >= 0): a candidate is suspect when
  ``s_n > s_p - m``;
- ``relative_margin`` r (in [0, 1)): suspect when ``s_n > s_p * (1 - r)``; this needs positive
  teacher scores (a cosine, a probability), so a store whose positives score <= 0 is refused.

``s_p`` is the teacher score of the group's positive; judged positives are never suspect. What
happens to a suspect is the ``action``:

- ``drop``: it is not drawn as a negative (the group's negatives come from the rest; when too
  few are left, the gap is filled with suspects masked out of the loss);
- ``mask``: it may be drawn, but its mask is False, so no loss term sees it;
- ``positive``: it may be drawn and is labelled a positive (RocketQA's "denoised" positives).

Losses stay pure functions of scores: the rule only changes which candidates a group holds, its
mask and its labels.

Example:
    >>> rule = FalseNegativeRule("mask", absolute_margin=0.5)
    >>> rule.suspects(np.array([2.0, 1.8, 1.0]), positive=0, judged=np.array([True, False, False]))
    array([False,  True, False])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from retrieval_kd.errors import RKDError

FN_ACTIONS = ("drop", "mask", "positive")


@dataclass(frozen=True)
class FalseNegativeRule:
    """Which candidates are suspected false negatives, and what to do with them.

    Raises:
        RKDError: an unknown action, no threshold, or a margin outside its range.
    """

    action: str = "drop"
    absolute_margin: float | None = None
    relative_margin: float | None = None

    def __post_init__(self) -> None:
        if self.action not in FN_ACTIONS:
            raise RKDError(
                f"false-negative action must be one of {FN_ACTIONS}, got {self.action!r}"
            )
        if self.absolute_margin is None and self.relative_margin is None:
            raise RKDError("a false-negative rule needs absolute_margin or relative_margin")
        a, r = self.absolute_margin, self.relative_margin
        if a is not None and not (math.isfinite(a) and a >= 0):
            raise RKDError(f"absolute_margin must be a finite number >= 0 (teacher units), got {a}")
        if r is not None and not 0 <= r < 1:
            raise RKDError(f"relative_margin must be in [0, 1), got {r}")

    def threshold(self, positive_score: float) -> float:
        """Scores above this are suspect (the stricter of the two thresholds given)."""
        limits = []
        if self.absolute_margin is not None:
            limits.append(positive_score - self.absolute_margin)
        if self.relative_margin is not None:
            limits.append(positive_score * (1.0 - self.relative_margin))
        return min(limits)

    def suspects(self, scores: np.ndarray, positive: int, judged: np.ndarray) -> np.ndarray:
        """Suspected false negatives of one query's candidates, relative to ``positive``.

        Shapes:
            scores: [N] teacher scores; judged: [N] bool (judged positives) -> [N] bool.
        """
        return (scores > self.threshold(float(scores[positive]))) & ~judged

    def check_scores(self, positive_scores: np.ndarray, where: object = None) -> None:
        """Refuse a relative margin over positives that do not all score above zero."""
        if self.relative_margin is None:
            return
        bad = int((positive_scores <= 0).sum())
        if bad:
            raise RKDError(
                f"groups.false_negatives.relative_margin needs positive teacher scores (a "
                f"cosine or a probability), but {bad} positive(s) score <= 0 in {where} (a "
                "z-scored ensemble, logits); use absolute_margin in teacher units instead"
            )

    def to_dict(self) -> dict[str, object]:
        return {
            "action": self.action,
            "absolute_margin": self.absolute_margin,
            "relative_margin": self.relative_margin,
        }
