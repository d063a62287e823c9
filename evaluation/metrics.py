"""Evaluate one run against qrels: trec_eval's numbers, computed by ranx.

``evaluate`` adds to ranx the rules that make its numbers match trec_eval's and stay the same
from one machine to the next:

- **Tie-breaking.** Each query's documents are ordered by score descending, then doc id
  descending (trec_eval's order, see ``conventions.trec_order``), and ranx is handed that
  order with strictly decreasing rank-based scores (n, n-1, ..., 1), so its own sort (an
  unstable ``np.argsort``) cannot reorder tied documents.
- **Doc ids.** ranx turns doc ids into ``float(hash(doc_id))``, which changes between
  processes and may collide; here each query's judged documents get the ids 0..m-1 and
  unjudged retrieved documents get -1, so matching is exact.
- **Query set** (the same for every metric): queries in the qrels with no document at the
  conventions' relevance level are *excluded*; queries in the qrels but absent from the run
  (or whose ranking is empty) are *missing* and score 0 on every metric (``trec_eval -c``);
  queries in the run but not in the qrels are *unjudged* and not evaluated (trec_eval skips
  them too). All three lists are reported.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ranx
from numba.core.errors import NumbaTypeSafetyWarning
from numba.typed import List as TypedList

from evaluation.conventions import (
    Conventions,
    MetricSpec,
    get_conventions,
    parse_metrics,
    relevant_at,
    sorted_ids,
    trec_order,
)
from retrieval_kd.data.types import Qrels, Run
from retrieval_kd.errors import InputError


@dataclass
class EvaluationResult:
    """Scores of one run.

    Attributes:
        means: metric key (as requested, lowercased, e.g. ``"ndcg@10"``) -> mean over the
            evaluated queries (``n_queries`` of them, missing ones counting 0).
        per_query: metric key -> query id -> score, for the same evaluated queries (missing
            queries included with 0.0), query ids in string order. Plain dicts, so the result is
            JSON-ready; ``pandas.DataFrame(result.per_query)`` gives a query x metric table.
        n_queries: number of queries averaged over.
        excluded_queries: in the qrels, but without any document at the relevance level.
        missing_queries: in the qrels with a relevant document, but absent from the run or
            with an empty ranking; they score 0.
        unjudged_queries: in the run but not in the qrels; not evaluated.
        conventions: name of the conventions used (``default``, ``trec-dl``, ``beir``).
        ranx_metrics: metric key -> the ranx metric actually computed (e.g. ``"mrr@10-l2"``).
    """

    means: dict[str, float]
    per_query: dict[str, dict[str, float]]
    n_queries: int
    excluded_queries: list[str]
    missing_queries: list[str]
    unjudged_queries: list[str]
    conventions: str
    ranx_metrics: dict[str, str] = field(default_factory=dict)

    @property
    def metrics(self) -> list[str]:
        """Metric keys, in the order they were requested."""
        return list(self.means)

    @property
    def query_ids(self) -> list[str]:
        """The evaluated query ids (missing ones included), in string order."""
        first = next(iter(self.per_query.values()), {})
        return list(first)

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable dict holding every field."""
        return {
            "conventions": self.conventions,
            "n_queries": self.n_queries,
            "means": dict(self.means),
            "per_query": {m: dict(scores) for m, scores in self.per_query.items()},
            "excluded_queries": list(self.excluded_queries),
            "missing_queries": list(self.missing_queries),
            "unjudged_queries": list(self.unjudged_queries),
            "ranx_metrics": dict(self.ranx_metrics),
        }


def evaluate(
    run: Run,
    qrels: Qrels,
    metrics: str | Sequence[str],
    conventions: str = "default",
) -> EvaluationResult:
    """Score ``run`` against ``qrels`` (see the module docstring for the rules).

    Neither input is modified.

    Args:
        run: query id -> {doc id: score}, higher scores ranked first.
        qrels: query id -> {doc id: integer grade}.
        metrics: names such as ``["ndcg@10", "MRR@10", "r@100"]``; see ``evaluation.conventions``.
        conventions: ``"default"``, ``"trec-dl"`` or ``"beir"``.

    Returns:
        The means, the per-query scores and the lists of queries left out or counted as 0.

    Raises:
        InputError: an unknown metric or conventions name, malformed inputs, or no query left
            to evaluate (no query in the qrels has a document at the relevance level).

    Example:
        >>> qrels = {"q1": {"d1": 1}}
        >>> evaluate({"q1": {"d0": 2.0, "d1": 1.0}}, qrels, ["mrr@10"]).means
        {'mrr@10': 0.5}
    """
    conv = get_conventions(conventions)
    specs = parse_metrics(metrics)
    _check_mapping(run, "run")
    _check_mapping(qrels, "qrels")

    excluded: list[str] = []
    evaluated: list[str] = []
    for query_id in sorted_ids(qrels):
        judgements = qrels[query_id]
        _check_mapping(judgements, f"qrels[{query_id!r}]")
        if relevant_at(judgements, conv.relevance_level):
            evaluated.append(query_id)
        else:
            excluded.append(query_id)
    if not evaluated:
        raise InputError(
            f"no query to evaluate: none of the {len(qrels)} queries in the qrels has a document "
            f"with grade >= {conv.relevance_level} (conventions {conv.name!r})"
        )

    rankings: dict[str, list[str]] = {}
    for query_id in evaluated:
        scores = run.get(query_id)
        if scores is None:
            continue
        _check_mapping(scores, f"run[{query_id!r}]")
        ranking = trec_order(scores, exclude=query_id if conv.drop_self_hits else None)
        if ranking:
            rankings[query_id] = ranking
    missing = [q for q in evaluated if q not in rankings]
    present = [q for q in evaluated if q in rankings]
    unjudged = sorted_ids(q for q in run if q not in qrels)

    computed = _ranx_scores(qrels, rankings, present, specs, conv) if present else {}
    per_query: dict[str, dict[str, float]] = {}
    means: dict[str, float] = {}
    for spec in specs:
        name = spec.ranx_name(conv)
        values = dict(zip(present, computed.get(name, []), strict=True))
        scores_by_query = {q: float(values.get(q, 0.0)) for q in evaluated}
        per_query[spec.key] = scores_by_query
        means[spec.key] = float(np.mean(list(scores_by_query.values())))
    return EvaluationResult(
        means=means,
        per_query=per_query,
        n_queries=len(evaluated),
        excluded_queries=excluded,
        missing_queries=missing,
        unjudged_queries=unjudged,
        conventions=conv.name,
        ranx_metrics={spec.key: spec.ranx_name(conv) for spec in specs},
    )


def _check_mapping(value: object, what: str) -> None:
    if not isinstance(value, Mapping):
        raise InputError(f"{what} must be a mapping, got {type(value).__name__}")


def _grade(query_id: str, doc_id: str, grade: object) -> int:
    """The grade as an int; floats are accepted only when integral (``2.0``)."""
    if isinstance(grade, bool) or not isinstance(grade, (int, float, np.integer, np.floating)):
        raise InputError(f"qrels grade of {query_id!r}/{doc_id!r} is not a number: {grade!r}")
    if float(grade) != int(grade):
        raise InputError(f"qrels grade of {query_id!r}/{doc_id!r} is not an integer: {grade!r}")
    return int(grade)


def _ranx_scores(
    qrels: Qrels,
    rankings: Mapping[str, list[str]],
    query_ids: list[str],
    specs: list[MetricSpec],
    conv: Conventions,
) -> dict[str, np.ndarray]:
    """Per-query scores from ranx, one array per ranx metric name, in ``query_ids`` order.

    ranx's metric kernels read, per query, a qrels array of ``[doc, grade]`` rows sorted by
    grade descending (its ideal DCG takes the first k rows) and a run array of ``[doc, score]``
    rows in rank order; typed lists are passed as they are, without ranx re-sorting them.
    """
    qrels_arrays = []
    run_arrays = []
    for query_id in query_ids:
        judged = sorted(
            ((_grade(query_id, d, g), d) for d, g in qrels[query_id].items()), reverse=True
        )
        local_id = {doc_id: float(i) for i, (_, doc_id) in enumerate(judged)}
        qrels_arrays.append(
            np.array([[i, grade] for i, (grade, _) in enumerate(judged)], dtype=np.float64)
        )
        ranking = rankings[query_id]
        run_array = np.empty((len(ranking), 2), dtype=np.float64)
        run_array[:, 0] = [local_id.get(doc_id, -1.0) for doc_id in ranking]
        run_array[:, 1] = np.arange(len(ranking), 0, -1, dtype=np.float64)
        run_arrays.append(run_array)
    names = list(dict.fromkeys(spec.ranx_name(conv) for spec in specs))
    # ranx 0.3.21 returns ``metric_scores_dict[m]`` for a single metric, where ``m`` is by then
    # the bare family name ("ndcg"), a KeyError when return_mean=False; asking for the metric
    # twice makes it return the dict.
    requested = names if len(names) > 1 else names * 2
    with warnings.catch_warnings():
        # ranx's kernels, compiled on first use, warn about their own prange index cast.
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        scores = ranx.evaluate(
            TypedList(qrels_arrays),
            TypedList(run_arrays),
            requested,
            return_mean=False,
            save_results_in_run=False,
        )
    return {name: np.asarray(scores[name], dtype=np.float64) for name in names}
