"""Teacher-student agreement on held-out queries: does the student rank like its teacher?

Both are measured per query on the same candidate list (the teacher's scored candidates) and
averaged over queries:

- Kendall's τ-b between teacher and student scores (Kendall 1938; τ-b handles ties), the
  usual rank-correlation measure in distillation studies;
- top-k overlap: |top-k(teacher) ∩ top-k(student)| / k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import kendalltau

from retrieval_kd.data.runs import ranked_doc_ids
from retrieval_kd.data.types import Run


@dataclass
class Agreement:
    """Mean agreement over ``n_queries`` queries with at least two shared candidates."""

    kendall_tau: float
    top_k_overlap: float
    k: int
    n_queries: int

    def to_json(self) -> dict[str, float | int]:
        return {
            "kendall_tau": self.kendall_tau,
            f"top{self.k}_overlap": self.top_k_overlap,
            "n_queries": self.n_queries,
        }


def agreement(teacher: Run, student: Run, k: int = 10) -> Agreement:
    """Agreement of ``student`` with ``teacher`` over the documents both scored per query.

    Example:
        >>> t = {"q": {"a": 3.0, "b": 2.0, "c": 1.0}}
        >>> s = {"q": {"a": 0.9, "b": 0.1, "c": 0.5}}
        >>> a = agreement(t, s, k=1)
        >>> round(a.kendall_tau, 4), a.top_k_overlap
        (0.3333, 1.0)
    """
    taus, overlaps = [], []
    for query_id, teacher_scores in teacher.items():
        student_scores = student.get(query_id, {})
        shared = [d for d in teacher_scores if d in student_scores]
        if len(shared) < 2:
            continue
        t = np.array([teacher_scores[d] for d in shared])
        s = np.array([student_scores[d] for d in shared])
        tau = kendalltau(t, s).statistic
        taus.append(0.0 if np.isnan(tau) else float(tau))
        depth = min(k, len(shared))
        top_t = set(ranked_doc_ids({d: teacher_scores[d] for d in shared}, depth))
        top_s = set(ranked_doc_ids({d: student_scores[d] for d in shared}, depth))
        overlaps.append(len(top_t & top_s) / depth)
    if not taus:
        return Agreement(float("nan"), float("nan"), k, 0)
    return Agreement(float(np.mean(taus)), float(np.mean(overlaps)), k, len(taus))
