"""Compare several runs on the same qrels, with paired significance tests against a baseline."""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evaluation.conventions import get_conventions, parse_metrics
from evaluation.metrics import EvaluationResult, evaluate
from evaluation.significance import TESTS, fisher_randomization_test, paired_t_test
from retrieval_kd.data.types import Qrels, Run
from retrieval_kd.errors import InputError

#: Marker appended to a value that differs significantly from the baseline, per test.
MARKERS = {"student": "†", "fisher": "‡"}

TEST_DESCRIPTIONS = {
    "student": "two-sided paired Student t-test",
    "fisher": "Fisher's randomization test",
}


@dataclass
class Comparison:
    """Several runs scored on the same queries, each tested against the baseline.

    Attributes:
        results: run name -> its ``EvaluationResult``, in the order the runs were given.
        baseline: name of the baseline run.
        metrics: metric keys, in the order requested.
        p_values: run name -> metric -> test (``"student"``, ``"fisher"``) -> p-value, for every
            run except the baseline. NaN when a test is undefined (fewer than two queries).
        alpha: significance level; a difference is significant when p < alpha.
        conventions: name of the conventions used.
        n_permutations: permutations drawn by Fisher's randomization test.
        seed: seed of Fisher's randomization test.
    """

    results: dict[str, EvaluationResult]
    baseline: str
    metrics: list[str]
    p_values: dict[str, dict[str, dict[str, float]]]
    alpha: float
    conventions: str
    n_permutations: int
    seed: int

    @property
    def means(self) -> dict[str, dict[str, float]]:
        """Run name -> metric -> mean score."""
        return {name: dict(result.means) for name, result in self.results.items()}

    @property
    def n_queries(self) -> int:
        """Number of queries every run was averaged and paired over."""
        return self.results[self.baseline].n_queries

    def significant(self, run: str, metric: str, test: str) -> bool:
        """Whether ``run`` differs from the baseline on ``metric`` under ``test`` (p < alpha)."""
        p_value = self.p_values.get(run, {}).get(metric, {}).get(test, math.nan)
        return not math.isnan(p_value) and p_value < self.alpha

    def to_markdown(self) -> str:
        """One Markdown table (rows = runs, columns = metrics, 4 decimals) and a legend line.

        A value gets ``†`` when the paired t-test and ``‡`` when Fisher's randomization test
        finds it different from the baseline's at level ``alpha``.
        """
        header = "| run | " + " | ".join(self.metrics) + " |"
        rule = "|---|" + "---:|" * len(self.metrics)
        lines = [header, rule]
        for name, result in self.results.items():
            label = _escape(name) + (" (reference)" if name == self.baseline else "")
            cells = []
            for metric in self.metrics:
                marks = "".join(
                    MARKERS[test] for test in TESTS if self.significant(name, metric, test)
                )
                cells.append(f"{result.means[metric]:.4f}{marks}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        tests = "; ".join(f"{MARKERS[t]} {self._describe(t)}" for t in TESTS)
        legend = (
            f"Markers: significant difference from the reference ({_escape(self.baseline)}) "
            f"at p < {self.alpha:g}: {tests}. {self.n_queries} queries, conventions "
            f"{self.conventions}."
        )
        return "\n".join(lines) + "\n\n" + legend + "\n"

    def _describe(self, test: str) -> str:
        if test == "fisher":
            detail = f"{self.n_permutations:,} permutations, seed {self.seed}"
            return f"{TEST_DESCRIPTIONS[test]} ({detail})"
        return TEST_DESCRIPTIONS[test]

    def write_per_query_csv(self, path: str | Path) -> Path:
        """Write every per-query score in long format: ``run,query_id,metric,value``.

        Rows follow the run order, then the metric order, then the query ids in string order.
        Returns the path written.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["run", "query_id", "metric", "value"])
            for name, result in self.results.items():
                for metric in self.metrics:
                    for query_id, value in result.per_query[metric].items():
                        writer.writerow([name, query_id, metric, repr(value)])
        return path

    def to_json(self, per_query: bool = False) -> dict[str, Any]:
        """A JSON-serialisable dict (NaN p-values become ``None``).

        Args:
            per_query: also hold every run's per-query scores (large for big query sets).
        """
        runs = {}
        for name, result in self.results.items():
            data = result.to_json()
            if not per_query:
                data.pop("per_query")
            runs[name] = data
        return {
            "baseline": self.baseline,
            "metrics": list(self.metrics),
            "conventions": self.conventions,
            "alpha": self.alpha,
            "n_queries": self.n_queries,
            "tests": {t: self._describe(t) for t in TESTS},
            "n_permutations": self.n_permutations,
            "seed": self.seed,
            "runs": runs,
            "p_values": {
                run: {
                    metric: {t: (None if math.isnan(p) else p) for t, p in tests.items()}
                    for metric, tests in by_metric.items()
                }
                for run, by_metric in self.p_values.items()
            },
        }


def compare_runs(
    runs: Mapping[str, Run],
    qrels: Qrels,
    metrics: str | Sequence[str],
    baseline: str | None = None,
    conventions: str = "default",
    alpha: float = 0.05,
    n_permutations: int = 10_000,
    seed: int = 42,
) -> Comparison:
    """Evaluate several runs and test each one against the baseline, query by query.

    Every run is scored on the same queries (``evaluate``'s query set depends on the qrels and
    the conventions only, missing queries counting 0), so the per-query scores pair up.

    Args:
        runs: run name -> run, in display order.
        qrels: query id -> {doc id: grade}.
        metrics: metric names, see ``evaluation.conventions``.
        baseline: name of the baseline run; defaults to the first run.
        conventions: ``"default"``, ``"trec-dl"`` or ``"beir"``.
        alpha: significance level, 0 < alpha < 1.
        n_permutations: permutations of Fisher's randomization test.
        seed: seed of Fisher's randomization test (fixed, so results are reproducible).

    Raises:
        InputError: no run, an unknown baseline, a bad alpha, or anything ``evaluate`` rejects.
    """
    if not runs:
        raise InputError("compare_runs needs at least one run")
    names = list(runs)
    if baseline is None:
        baseline = names[0]
    if baseline not in runs:
        raise InputError(f"baseline {baseline!r} is not one of the runs: {', '.join(names)}")
    if not 0.0 < alpha < 1.0:
        raise InputError(f"alpha must be between 0 and 1, got {alpha}")
    if n_permutations < 1:
        raise InputError(f"n_permutations must be >= 1, got {n_permutations}")
    conv = get_conventions(conventions)
    keys = [spec.key for spec in parse_metrics(metrics)]

    results = {name: evaluate(runs[name], qrels, keys, conv.name) for name in names}
    base = results[baseline]
    p_values: dict[str, dict[str, dict[str, float]]] = {}
    for name, result in results.items():
        if name == baseline:
            continue
        if result.query_ids != base.query_ids:  # cannot happen: same qrels, same conventions
            raise AssertionError("runs were evaluated on different query sets")
        p_values[name] = {}
        for metric in keys:
            control = np.fromiter(base.per_query[metric].values(), dtype=np.float64)
            treatment = np.fromiter(result.per_query[metric].values(), dtype=np.float64)
            p_values[name][metric] = {
                "student": paired_t_test(control, treatment),
                "fisher": fisher_randomization_test(control, treatment, n_permutations, seed),
            }
    return Comparison(
        results=results,
        baseline=baseline,
        metrics=keys,
        p_values=p_values,
        alpha=alpha,
        conventions=conv.name,
        n_permutations=n_permutations,
        seed=seed,
    )


def _escape(text: str) -> str:
    """Escape characters that would break a Markdown table cell."""
    return text.replace("|", "\\|").replace("\n", " ")
