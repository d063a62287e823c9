"""One tie rule everywhere: score descending, then doc id descending (retrieval_kd.ranking).

Each place that orders documents is checked on the same tied scores: the run file and the
evaluation order, the candidate plan, the score store, fusion and the late-interaction top k.
Before the rule was shared, the plan and the store broke ties by doc id ascending and the
late-interaction index by position.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from evaluation.conventions import trec_order
from retrieval_kd.candidates.fusion import fuse_runs
from retrieval_kd.data.runs import ranked_doc_ids, read_run, write_run
from retrieval_kd.index.late_interaction import _top_k
from retrieval_kd.ranking import order, ranked, tie_ranks
from retrieval_kd.store import ScoreStore, score_candidates
from retrieval_kd.store.scoring import plan_candidates

SCORES = {"d1": 1.0, "d3": 2.0, "d2": 1.0, "d0": 1.0}
RULE = ["d3", "d2", "d1", "d0"]  # 2.0 first, then the tied three by doc id descending


class Constant:
    """A teacher that gives every passage of a query the candidate run's score."""

    def score(self, queries, passages, *, query_ids=None, doc_ids=None):  # noqa: ANN001
        return [np.array([SCORES[d] for d in docs]) for docs in doc_ids]

    def describe(self) -> dict:
        return {"kind": "constant", "score_transform": "none"}


def test_the_rule_itself() -> None:
    assert ranked(SCORES) == RULE
    assert ranked(SCORES, depth=2) == RULE[:2]
    ids = list(SCORES)
    assert [ids[i] for i in order(np.array(list(SCORES.values())), ids)] == RULE
    assert tie_ranks(["b", "c", "a"]).tolist() == [1, 0, 2]


def test_runs_and_evaluation_follow_the_rule(tmp_path: Path) -> None:
    assert ranked_doc_ids(SCORES) == RULE
    assert trec_order(SCORES) == RULE
    path = write_run({"q": SCORES}, tmp_path / "run.trec")
    lines = path.read_text().splitlines()
    assert [line.split()[2] for line in lines] == RULE
    assert read_run(path)["q"] == SCORES


def test_candidate_plan_and_store_follow_the_rule(tmp_path: Path) -> None:
    assert plan_candidates({"q": SCORES}, depth=3) == {"q": RULE[:3]}

    def texts(ids: list[str]) -> list[str]:
        return [f"text {d}" for d in ids]

    score_candidates(Constant(), {"q": "query"}, {"q": SCORES}, texts, tmp_path / "s", depth=4)
    assert ScoreStore(tmp_path / "s").get("q").doc_ids == RULE


def test_fusion_keeps_the_rule() -> None:
    fused = fuse_runs([{"q": SCORES}, {"q": SCORES}], "rrf", depth=4)
    assert ranked(fused["q"]) == RULE


def test_late_interaction_top_k_breaks_ties_by_doc_id() -> None:
    ids = ["d1", "d3", "d2", "d0"]  # positions 0..3
    scores = np.array([SCORES[d] for d in ids], np.float32)
    _, positions = _top_k(scores, np.arange(4), 3, tie_ranks(ids))
    assert [ids[p] for p in positions] == RULE[:3]
