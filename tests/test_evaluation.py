"""Tests of ``evaluation.evaluate`` against hand-computed values, and trec_eval's DL19 numbers."""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path

import pytest

from evaluation import EvaluationResult, evaluate
from retrieval_kd.errors import InputError

LOG2_3 = math.log2(3)  # discount of rank 2
LOG2_5 = math.log2(5)  # discount of rank 4


def _data_dir() -> Path:
    env = os.environ.get("RKD_DATA_DIR")
    return Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"


# --- tie-breaking ------------------------------------------------------------------------------


def test_ties_are_broken_by_doc_id_descending_like_trec_eval() -> None:
    qrels = {"q1": {"d1": 1}}
    # "a" scores 2.0, then "d1" and "d2" tie at 1.0. trec_eval orders ties by doc id
    # descending: a, d2, d1 -> the relevant d1 is at rank 3 -> RR = 1/3.
    # (Insertion order puts d1 first on purpose: it must not matter.)
    tie_with_d2 = {"q1": {"a": 2.0, "d1": 1.0, "d2": 1.0}}
    # Same scores, but the tied neighbour is "d0" < "d1": order a, d1, d0 -> RR = 1/2.
    tie_with_d0 = {"q1": {"a": 2.0, "d1": 1.0, "d0": 1.0}}
    assert evaluate(tie_with_d2, qrels, ["mrr@10"]).means["mrr@10"] == pytest.approx(1 / 3)
    assert evaluate(tie_with_d0, qrels, ["mrr@10"]).means["mrr@10"] == pytest.approx(1 / 2)


def test_rank_column_order_is_irrelevant_only_scores_count() -> None:
    qrels = {"q1": {"d1": 1, "d3": 1}}
    # Scores d3=0.9 > d2=0.5 > d1=0.1, whatever the dict order: d3 at rank 1, d1 at rank 3.
    # recall@2 = 1 of 2 relevant = 0.5; AP@10 = (1/1 + 2/3) / 2 = 0.8333...
    run = {"q1": {"d1": 0.1, "d2": 0.5, "d3": 0.9}}
    result = evaluate(run, qrels, ["recall@2", "map@10"])
    assert result.means["recall@2"] == pytest.approx(0.5)
    assert result.means["map@10"] == pytest.approx((1 + 2 / 3) / 2)


# --- graded nDCG -------------------------------------------------------------------------------


def test_ndcg_uses_linear_graded_gain_like_trec_eval_ndcg_cut() -> None:
    qrels = {"q1": {"d1": 3, "d2": 2, "d3": 0, "d4": 1}}
    # Ranking: d3 (grade 0), d2 (2), d1 (3), d5 (unjudged, 0).
    run = {"q1": {"d3": 4.0, "d2": 3.0, "d1": 2.0, "d5": 1.0}}
    # DCG@3  = 0/log2(2) + 2/log2(3) + 3/log2(4) = 1.26186 + 1.5     = 2.76186
    # IDCG@3 = 3/log2(2) + 2/log2(3) + 1/log2(4) = 3 + 1.26186 + 0.5 = 4.76186
    # nDCG@3 = 2.76186 / 4.76186 = 0.58000
    expected = (2 / LOG2_3 + 3 / 2) / (3 + 2 / LOG2_3 + 1 / 2)
    value = evaluate(run, qrels, ["ndcg@3"]).means["ndcg@3"]
    assert value == pytest.approx(expected)
    assert value == pytest.approx(0.5800, abs=1e-4)
    # Burges' exponential gain (2^g - 1) would give (3/log2(3) + 7/2) / (7 + 3/log2(3) + 1/2)
    # = 0.57412: the metric must not be that one.
    burges = (3 / LOG2_3 + 7 / 2) / (7 + 3 / LOG2_3 + 1 / 2)
    assert abs(value - burges) > 1e-3


# --- relevance levels --------------------------------------------------------------------------

LEVEL_QRELS = {"q1": {"d1": 1, "d2": 2, "d3": 3}}
# Ranking: d1 (grade 1), d2 (grade 2), d9 (unjudged), d3 (grade 3).
LEVEL_RUN = {"q1": {"d1": 3.0, "d2": 2.0, "d9": 1.0, "d3": 0.5}}
LEVEL_METRICS = ["mrr@10", "recall@2", "recall@4", "map@10", "p@2", "ndcg@10"]
# nDCG@10 is graded in both conventions (every grade >= 1 is a gain):
# DCG  = 1/log2(2) + 2/log2(3) + 0 + 3/log2(5)
# IDCG = 3/log2(2) + 2/log2(3) + 1/log2(4)
LEVEL_NDCG = (1 + 2 / LOG2_3 + 3 / LOG2_5) / (3 + 2 / LOG2_3 + 1 / 2)


def test_default_conventions_count_grade_one_as_relevant() -> None:
    means = evaluate(LEVEL_RUN, LEVEL_QRELS, LEVEL_METRICS).means
    assert means["mrr@10"] == pytest.approx(1.0)  # d1 at rank 1
    assert means["recall@2"] == pytest.approx(2 / 3)  # d1, d2 of {d1, d2, d3}
    assert means["recall@4"] == pytest.approx(1.0)
    assert means["map@10"] == pytest.approx((1 / 1 + 2 / 2 + 3 / 4) / 3)  # hits at 1, 2, 4
    assert means["p@2"] == pytest.approx(1.0)
    assert means["ndcg@10"] == pytest.approx(LEVEL_NDCG)


def test_trec_dl_conventions_count_grade_two_as_relevant_except_for_ndcg() -> None:
    means = evaluate(LEVEL_RUN, LEVEL_QRELS, LEVEL_METRICS, conventions="trec-dl").means
    assert means["mrr@10"] == pytest.approx(1 / 2)  # d1 (grade 1) no longer counts: d2 at 2
    assert means["recall@2"] == pytest.approx(1 / 2)  # d2 of {d2, d3}
    assert means["recall@4"] == pytest.approx(1.0)
    assert means["map@10"] == pytest.approx((1 / 2 + 2 / 4) / 2)  # hits at ranks 2 and 4
    assert means["p@2"] == pytest.approx(1 / 2)
    assert means["ndcg@10"] == pytest.approx(LEVEL_NDCG)  # unchanged: graded


def test_precision_divides_by_k_and_map_by_all_relevant() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1, "d3": 1}}
    run = {"q1": {"d1": 1.0, "x": 0.5}}  # two documents retrieved, one relevant at rank 1
    means = evaluate(run, qrels, ["p@10", "map@10"]).means
    assert means["p@10"] == pytest.approx(1 / 10)  # trec_eval's P.10: 1 hit / 10
    assert means["map@10"] == pytest.approx(1 / 3)  # (1/1) / 3 relevant documents


# --- beir ----------------------------------------------------------------------------------


def test_beir_conventions_drop_the_query_itself_from_the_run() -> None:
    qrels = {"q1": {"d1": 1}}
    run = {"q1": {"q1": 5.0, "d1": 4.0}}  # the query's own document ranks first
    assert evaluate(run, qrels, ["mrr@10"]).means["mrr@10"] == pytest.approx(1 / 2)
    # beir: "q1" is removed, d1 moves up to rank 1.
    assert evaluate(run, qrels, ["mrr@10"], "beir").means["mrr@10"] == pytest.approx(1.0)


# --- query sets ------------------------------------------------------------------------------


def test_queries_without_relevant_documents_are_excluded_from_every_metric() -> None:
    qrels = {
        "q1": {"d1": 1},
        "q2": {"d2": 0},  # nothing relevant at any level
        "q3": {"d3": 1},  # relevant at grade 1 only: excluded under trec-dl
    }
    run = {"q1": {"x": 2.0, "d1": 1.0}, "q2": {"d2": 1.0}, "q3": {"d3": 1.0}}
    default = evaluate(run, qrels, ["mrr@10", "ndcg@10"])
    # q1: RR = 1/2, q3: RR = 1 -> mean 0.75; q2 is not averaged in.
    assert default.means["mrr@10"] == pytest.approx(0.75)
    assert default.excluded_queries == ["q2"]
    assert default.n_queries == 2
    # trec-dl: no query has a grade-2 document; add one that does.
    qrels_dl = {**qrels, "q4": {"d4": 2}}
    run_dl = {**run, "q4": {"d4": 1.0}}
    dl = evaluate(run_dl, qrels_dl, ["mrr@10", "ndcg@10"], "trec-dl")
    assert dl.excluded_queries == ["q1", "q2", "q3"]
    # The same set for nDCG, although q1 and q3 have grade-1 gains.
    assert set(dl.per_query["ndcg@10"]) == set(dl.per_query["mrr@10"]) == {"q4"}
    assert dl.means == {"mrr@10": 1.0, "ndcg@10": 1.0}


def test_queries_missing_from_the_run_score_zero_and_run_only_queries_are_ignored() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
    run = {
        "q1": {"d1": 1.0},  # RR = 1
        "q3": {},  # an empty ranking counts as missing
        "q9": {"d9": 1.0},  # not judged: not evaluated
    }
    result = evaluate(run, qrels, ["mrr@10", "recall@10"])
    # (1 + 0 + 0) / 3 queries
    assert result.means["mrr@10"] == pytest.approx(1 / 3)
    assert result.means["recall@10"] == pytest.approx(1 / 3)
    assert result.per_query["mrr@10"] == {"q1": 1.0, "q2": 0.0, "q3": 0.0}
    assert result.missing_queries == ["q2", "q3"]
    assert result.unjudged_queries == ["q9"]
    assert result.n_queries == 3
    assert result.query_ids == ["q1", "q2", "q3"]


def test_no_query_left_to_evaluate_is_an_error() -> None:
    with pytest.raises(InputError, match="no query to evaluate"):
        evaluate({"q1": {"d1": 1.0}}, {"q1": {"d1": 1}}, ["mrr@10"], "trec-dl")


# --- names and validation -------------------------------------------------------------------


def test_metric_names_are_case_insensitive_and_aliases_agree() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1}}
    run = {"q1": {"d1": 2.0, "x": 1.5, "d2": 1.0}}  # hits at ranks 1 and 3
    result = evaluate(run, qrels, ["P@2", "precision@2", "R@2", "Recall@2", "RR@10", "MRR@10"])
    assert list(result.means) == ["p@2", "precision@2", "r@2", "recall@2", "rr@10", "mrr@10"]
    assert result.means["p@2"] == result.means["precision@2"] == pytest.approx(1 / 2)
    assert result.means["r@2"] == result.means["recall@2"] == pytest.approx(1 / 2)
    assert result.means["rr@10"] == result.means["mrr@10"] == pytest.approx(1.0)
    assert result.ranx_metrics["p@2"] == "precision@2-l1"


@pytest.mark.parametrize("bad", ["foo@10", "ndcg", "ndcg@", "ndcg@0", "ndcg@x", "mrr@-1", ""])
def test_an_invalid_metric_is_an_input_error_naming_it_and_the_valid_ones(bad: str) -> None:
    with pytest.raises(InputError) as info:
        evaluate({"q1": {"d1": 1.0}}, {"q1": {"d1": 1}}, ["ndcg@10", bad])
    message = str(info.value)
    assert repr(bad) in message
    assert "ndcg@k" in message and "recall@k" in message


def test_unknown_conventions_are_an_input_error() -> None:
    with pytest.raises(InputError, match="trec-dl"):
        evaluate({"q1": {"d1": 1.0}}, {"q1": {"d1": 1}}, ["ndcg@10"], conventions="msmarco")


def test_nan_scores_and_fractional_grades_are_input_errors() -> None:
    with pytest.raises(InputError, match="NaN"):
        evaluate({"q1": {"d1": float("nan")}}, {"q1": {"d1": 1}}, ["ndcg@10"])
    with pytest.raises(InputError, match="not an integer"):
        evaluate({"q1": {"d1": 1.0}}, {"q1": {"d1": 1.5}}, ["ndcg@10"])


def test_inputs_are_not_mutated() -> None:
    qrels = {"q1": {"d1": 2, "d2": 0}, "q2": {"d3": 0}}
    run = {"q1": {"q1": 9.0, "d2": 1.0, "d1": 1.0}, "q7": {"d1": 3.0}}
    qrels_before, run_before = copy.deepcopy(qrels), copy.deepcopy(run)
    result = evaluate(run, qrels, ["ndcg@10", "mrr@10"], conventions="beir")
    assert qrels == qrels_before and run == run_before
    assert list(run["q1"]) == ["q1", "d2", "d1"]  # not even reordered
    # beir drops "q1"; the tie d2/d1 puts d2 first -> d1 at rank 2 -> RR = 1/2.
    assert result.means["mrr@10"] == pytest.approx(1 / 2)


def test_result_to_json_round_trips_through_json() -> None:
    result = evaluate({"q1": {"d1": 1.0}}, {"q1": {"d1": 1}, "q2": {"d2": 1}}, ["ndcg@10"])
    data = json.loads(json.dumps(result.to_json(), allow_nan=False))
    assert data["means"] == {"ndcg@10": 0.5}  # q1 = 1, missing q2 = 0
    assert data["per_query"] == {"ndcg@10": {"q1": 1.0, "q2": 0.0}}
    assert data["missing_queries"] == ["q2"]
    assert data["conventions"] == "default"
    assert isinstance(result, EvaluationResult)


# --- real data: trec_eval's published DL19 values ----------------------------------------------


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("run_name", "expected"),
    [
        ("BM25", {"ndcg@10": 0.5071, "mrr@10": 0.7024, "recall@100": 0.5521}),
        ("D_BERT_KD_TASB", {"ndcg@10": 0.7235}),
    ],
)
def test_dl19_matches_trec_eval(run_name: str, expected: dict[str, float]) -> None:
    root = _data_dir() / "msmarco-trecdl"
    if not root.is_dir():
        pytest.skip(f"real data not found at {root} (set RKD_DATA_DIR)")
    from retrieval_kd.data import read_qrels, read_run

    qrels = read_qrels(root / "qrels" / "dl19.tsv")
    run = read_run(root / "runs" / f"dl19.{run_name}.trec")
    result = evaluate(run, qrels, list(expected), conventions="trec-dl")
    assert result.n_queries == 43
    for metric, value in expected.items():
        assert result.means[metric] == pytest.approx(value, abs=5e-4), metric
