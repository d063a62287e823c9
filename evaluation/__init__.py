"""Evaluation of runs against qrels (trec_eval's conventions, computed by ranx) and comparisons.

Public API:

- ``evaluate(run, qrels, metrics, conventions="default") -> EvaluationResult``
- ``compare_runs(runs, qrels, metrics, baseline=None, conventions="default", alpha=0.05)
  -> Comparison``
"""

from __future__ import annotations

from evaluation.compare import Comparison, compare_runs
from evaluation.conventions import CONVENTIONS, VALID_METRICS, Conventions, parse_metrics
from evaluation.metrics import EvaluationResult, evaluate

__all__ = [
    "CONVENTIONS",
    "VALID_METRICS",
    "Comparison",
    "Conventions",
    "EvaluationResult",
    "compare_runs",
    "evaluate",
    "parse_metrics",
]
