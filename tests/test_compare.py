"""Tests of ``evaluation.compare_runs`` and the paired significance tests."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np
import pytest

from evaluation import Comparison, compare_runs
from evaluation.significance import fisher_randomization_test, paired_t_test
from retrieval_kd.errors import InputError

# Three queries, one relevant document each.
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
# "first": relevant documents at ranks 1, 2, 1 -> RR 1, 1/2, 1 (mean 5/6).
FIRST = {
    "q1": {"d1": 3.0, "x": 2.0},
    "q2": {"x": 3.0, "d2": 2.0},
    "q3": {"d3": 3.0, "x": 2.0},
}
# "second": ranks 2, 2, 3 -> RR 1/2, 1/2, 1/3 (mean 4/9).
SECOND = {
    "q1": {"x": 3.0, "d1": 2.0},
    "q2": {"x": 3.0, "d2": 2.0},
    "q3": {"x": 3.0, "y": 2.5, "d3": 2.0},
}


def _data_dir() -> Path:
    env = os.environ.get("RKD_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _better_and_worse(n_queries: int) -> tuple[dict, dict, dict]:
    """A run that ranks each relevant document first, and one that ranks it 2nd or 3rd."""
    qrels = {f"q{i:02d}": {"rel": 1} for i in range(n_queries)}
    better = {q: {"rel": 2.0, "a": 1.0, "b": 0.5} for q in qrels}
    worse = {
        q: ({"a": 2.0, "rel": 1.0, "b": 0.5} if i % 2 else {"a": 2.0, "b": 1.5, "rel": 1.0})
        for i, q in enumerate(qrels)
    }
    return qrels, better, worse


def test_identical_runs_have_p_value_one_and_no_marker() -> None:
    comparison = compare_runs({"a": FIRST, "b": dict(FIRST)}, QRELS, ["mrr@10", "ndcg@10"])
    assert comparison.p_values == {
        "b": {
            "mrr@10": {"student": 1.0, "fisher": 1.0},
            "ndcg@10": {"student": 1.0, "fisher": 1.0},
        }
    }
    table = comparison.to_markdown().split("\n\n")[0]
    assert "†" not in table and "‡" not in table


def test_means_are_the_evaluated_means_of_each_run() -> None:
    comparison = compare_runs({"first": FIRST, "second": SECOND}, QRELS, ["MRR@10"])
    assert comparison.means["first"]["mrr@10"] == pytest.approx((1 + 1 / 2 + 1) / 3)
    assert comparison.means["second"]["mrr@10"] == pytest.approx((1 / 2 + 1 / 2 + 1 / 3) / 3)
    assert comparison.baseline == "first"
    assert comparison.n_queries == 3


def test_markdown_has_every_run_and_metric_with_4_decimals_and_a_legend() -> None:
    comparison = compare_runs(
        {"first": FIRST, "second": SECOND}, QRELS, ["mrr@10", "recall@1"], alpha=0.1
    )
    text = comparison.to_markdown()
    table, legend = text.strip().split("\n\n")
    lines = table.splitlines()
    assert lines[0] == "| run | mrr@10 | recall@1 |"
    assert len(lines) == 4  # header, rule, two runs
    assert lines[2].startswith("| first (reference) | 0.8333 | 0.6667")  # 5/6, 2/3
    assert lines[3].startswith("| second | 0.4444")  # 4/9
    assert "p < 0.1" in legend and "†" in legend and "‡" in legend
    assert "first" in legend


def test_a_clearly_better_run_is_marked_significant_under_both_tests() -> None:
    qrels, better, worse = _better_and_worse(12)
    comparison = compare_runs({"worse": worse, "better": better}, qrels, ["mrr@10"])
    # Per query RR: better 1, worse 1/2 or 1/3 -> every difference is positive. Fisher: only
    # the all-kept and all-swapped sign patterns reach the observed |sum|: p ~ 2 / 2**12.
    p_values = comparison.p_values["better"]["mrr@10"]
    assert p_values["student"] < 1e-6
    assert p_values["fisher"] < 0.01
    assert comparison.significant("better", "mrr@10", "student")
    row = comparison.to_markdown().splitlines()[3]
    assert row == "| better | 1.0000†‡ |"


def test_baseline_can_be_named_and_has_no_p_values() -> None:
    comparison = compare_runs({"first": FIRST, "second": SECOND}, QRELS, ["mrr@10"], "second")
    assert set(comparison.p_values) == {"first"}
    assert "| second (reference) |" in comparison.to_markdown()


def test_unknown_baseline_and_no_runs_are_input_errors() -> None:
    with pytest.raises(InputError, match="baseline"):
        compare_runs({"first": FIRST}, QRELS, ["mrr@10"], baseline="nope")
    with pytest.raises(InputError, match="at least one run"):
        compare_runs({}, QRELS, ["mrr@10"])
    with pytest.raises(InputError, match="alpha"):
        compare_runs({"first": FIRST}, QRELS, ["mrr@10"], alpha=5)


def test_per_query_csv_is_long_format_with_one_row_per_run_query_metric(tmp_path: Path) -> None:
    comparison = compare_runs({"first": FIRST, "second": SECOND}, QRELS, ["mrr@10", "p@1"])
    path = comparison.write_per_query_csv(tmp_path / "out" / "per_query.csv")
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["run", "query_id", "metric", "value"]
    assert len(rows) == 2 * 2 * 3  # runs x metrics x queries
    by_key = {(r["run"], r["query_id"], r["metric"]): float(r["value"]) for r in rows}
    assert by_key[("first", "q2", "mrr@10")] == pytest.approx(1 / 2)
    assert by_key[("second", "q3", "mrr@10")] == pytest.approx(1 / 3)
    assert by_key[("second", "q1", "p@1")] == 0.0


def test_to_json_is_strict_json_even_with_undefined_p_values() -> None:
    qrels = {"q1": {"d1": 1}}  # one query: the t-test is undefined (NaN)
    runs = {"a": {"q1": {"d1": 1.0, "x": 0.5}}, "b": {"q1": {"x": 1.0, "d1": 0.5}}}
    comparison = compare_runs(runs, qrels, ["mrr@10"], n_permutations=100)
    data = json.loads(json.dumps(comparison.to_json(per_query=True), allow_nan=False))
    assert data["p_values"]["b"]["mrr@10"]["student"] is None
    assert data["runs"]["b"]["per_query"]["mrr@10"] == {"q1": 0.5}
    assert isinstance(comparison, Comparison)


def test_comparisons_are_reproducible() -> None:
    qrels, better, worse = _better_and_worse(6)
    worse["q00"] = dict(better["q00"])  # one tie so that the p-value is not trivial
    first = compare_runs({"w": worse, "b": better}, qrels, ["mrr@10"]).p_values
    second = compare_runs({"w": worse, "b": better}, qrels, ["mrr@10"]).p_values
    assert first == second


def test_fisher_randomization_test_matches_the_exact_permutation_distribution() -> None:
    # Two queries, differences (1, 1): of the 4 equally likely sign patterns, (+,+) and (-,-)
    # reach |sum| = 2, so the exact p-value is 2/4 = 0.5.
    p_value = fisher_randomization_test(np.array([1.0, 1.0]), np.zeros(2), 20_000, seed=1)
    assert p_value == pytest.approx(0.5, abs=0.02)
    assert fisher_randomization_test(np.ones(3), np.ones(3)) == 1.0


def test_fisher_randomization_p_value_is_never_zero() -> None:
    # 40 queries all better by 1: no random sign pattern of 100 reaches |sum| = 40, so the
    # count is 0 and the p-value is its floor 1 / (n + 1), not 0.
    p_value = fisher_randomization_test(np.ones(40), np.zeros(40), n_permutations=100, seed=0)
    assert p_value == pytest.approx(1 / 101)


def test_paired_t_test_matches_the_textbook_formula() -> None:
    control = np.array([0.1, 0.4, 0.3, 0.5])
    treatment = np.array([0.3, 0.5, 0.6, 0.6])
    # d = (0.2, 0.1, 0.3, 0.1): mean 0.175, sample sd 0.0957427, t = 0.175 / (sd / 2) = 3.6556,
    # 3 degrees of freedom -> two-sided p = 0.0354 (t-distribution table).
    assert paired_t_test(control, treatment) == pytest.approx(0.0354, abs=5e-4)
    assert paired_t_test(control, control) == 1.0
    assert math.isnan(paired_t_test(np.array([0.1]), np.array([0.2])))


@pytest.mark.real_data
def test_dl19_tasb_beats_bm25_significantly() -> None:
    root = _data_dir() / "msmarco-trecdl"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set RKD_DATA_DIR)")
    from retrieval_kd.data import read_qrels, read_run

    qrels = read_qrels(root / "qrels" / "dl19.tsv")
    runs = {
        name: read_run(root / "runs" / f"dl19.{name}.trec") for name in ["BM25", "D_BERT_KD_TASB"]
    }
    comparison = compare_runs(runs, qrels, ["ndcg@10"], conventions="trec-dl")
    assert comparison.means["BM25"]["ndcg@10"] == pytest.approx(0.5071, abs=5e-4)
    assert comparison.means["D_BERT_KD_TASB"]["ndcg@10"] == pytest.approx(0.7235, abs=5e-4)
    assert comparison.significant("D_BERT_KD_TASB", "ndcg@10", "student")
    assert comparison.significant("D_BERT_KD_TASB", "ndcg@10", "fisher")
