"""Weighted combination of teachers after per-query calibration.

``score = Σ_m w_m · calibrate(s_m)`` over each query's candidate list, where ``calibrate`` is a
z-score, a min-max rescale or a normalised rank (see ``teachers.calibration``). With z-scores a
teacher whose raw scores span 0.01 (a sigmoid near saturation) and one spanning 20 (BM25) count
alike; the weights then say how much each should.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from retrieval_kd.errors import RKDError
from retrieval_kd.interfaces import Scorer
from teachers.calibration import get_calibration


class EnsembleTeacher:
    """Calibrated weighted sum of member teachers' scores.

    Args:
        members: ``(teacher, weight)`` pairs; any ``Scorer``, ``RunScoreTeacher`` included.
        calibration: ``zscore`` (default), ``minmax``, ``rank`` or ``none``.

    Example:
        >>> from teachers.run_scores import RunScoreTeacher
        >>> a = RunScoreTeacher({"q": {"d1": 10.0, "d2": 0.0}}, "bm25")
        >>> b = RunScoreTeacher({"q": {"d1": 0.1, "d2": 0.9}}, "dense")
        >>> ens = EnsembleTeacher([(a, 1.0), (b, 3.0)], calibration="minmax")
        >>> ens.score(["..."], [["x", "y"]], query_ids=["q"], doc_ids=[["d1", "d2"]])[0].tolist()
        [1.0, 3.0]
    """

    def __init__(self, members: Sequence[tuple[Scorer, float]], calibration: str = "zscore"):
        if not members:
            raise RKDError("an ensemble needs at least one member")
        for _, weight in members:
            if not np.isfinite(weight):
                raise RKDError(f"ensemble weight {weight!r} is not finite")
        self.members = list(members)
        self.calibration = calibration
        self._calibrate = get_calibration(calibration)
        #: the largest call a member asks the score store for (an LLM member shares each
        #: passage's forward pass among the queries of one call); None: the store's default
        self.queries_per_call = (
            max((getattr(t, "queries_per_call", None) or 0 for t, _ in self.members), default=0)
            or None
        )

    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """Shapes: Q queries with K_i candidates -> Q arrays [K_i] of combined scores."""
        totals = [np.zeros(len(p), dtype=np.float64) for p in passages]
        for teacher, weight in self.members:
            member_scores = teacher.score(queries, passages, query_ids=query_ids, doc_ids=doc_ids)
            for total, scores in zip(totals, member_scores, strict=True):
                total += weight * self._calibrate(np.asarray(scores, dtype=np.float64))
        return totals

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "ensemble",
            "calibration": self.calibration,
            "members": [{"weight": w, **t.describe()} for t, w in self.members],
        }
