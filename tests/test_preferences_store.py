"""The preference store: atomic shards, resume after a crash, skipped queries, manifests with
cost, derived score stores (Bradley-Terry, win rate, rank transforms), and the loss tensors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from retrieval_kd.errors import RKDError
from retrieval_kd.losses import cprd, listmle, listwise_kl, ranknet_from_pairs
from retrieval_kd.losses.preference import (
    bradley_terry,
    pairwise_targets,
    rank_scores,
    ranking_targets,
    win_rate,
)
from retrieval_kd.store import ScoreStore
from retrieval_kd.store.preferences import (
    PreferenceRecord,
    PreferenceStore,
    collect_preferences,
    preferences_to_scores,
    write_shard,
)

DOCS = {f"d{i}": f"passage number {i}" for i in range(6)}
QUERIES = {f"q{i}": f"query {i}" for i in range(7)}
# first-stage order d0 > d1 > ... ; the "LLM" prefers higher doc numbers
CANDIDATES = {q: {d: 10.0 - i for i, d in enumerate(DOCS)} for q in QUERIES}


def passage_text(ids: list[str]) -> list[str]:
    return [DOCS[i] for i in ids]


class FakePairwise:
    """Prefers the passage with the higher number; can crash or refuse on cue."""

    target = "pairwise"

    def __init__(self, crash_after: int | None = None, refuse: str | None = None, name="fake"):
        self.calls: list[str] = []
        self.crash_after, self.refuse, self.name = crash_after, refuse, name

    def judge(self, query: str, doc_ids: list[str], passages: list[str]) -> PreferenceRecord:
        if self.crash_after is not None and len(self.calls) == self.crash_after:
            raise KeyboardInterrupt  # a kill in the middle of a run
        self.calls.append(query)
        if query == self.refuse:
            raise RKDError("prompt too long")
        number = [int(p.split()[-1]) for p in passages]
        pairs = [(i, i + 1) for i in range(len(passages) - 1)]
        probs = [0.9 if number[i] > number[j] else 0.1 for i, j in pairs]
        cost = {"forward_passes": 2 * len(pairs), "tokens_in": 100, "tokens_out": 0}
        return PreferenceRecord("", doc_ids, np.array(pairs), np.array(probs), cost=cost)

    def describe(self) -> dict:
        return {"kind": "fake-pairwise", "model": self.name}


class FakeRanker:
    target = "ranking"

    def judge(self, query, doc_ids, passages):
        order = sorted(range(len(doc_ids)), key=lambda i: -int(passages[i].split()[-1]))
        cost = {"forward_passes": 1, "tokens_in": 50, "tokens_out": 12}
        repairs = {"missing_ids": 1}
        return PreferenceRecord("", [doc_ids[i] for i in order], cost=cost, repairs=repairs)

    def describe(self):
        return {"kind": "fake-ranker"}


def test_resume_after_a_crash_judges_only_the_rest(tmp_path: Path):
    folder = tmp_path / "prefs"
    crashing = FakePairwise(crash_after=5)
    with pytest.raises(KeyboardInterrupt):
        collect_preferences(
            crashing, QUERIES, CANDIDATES, passage_text, folder, depth=4, queries_per_shard=2
        )
    partial = PreferenceStore(folder)
    assert len(partial) == 4 and partial.manifest is None  # two full shards, the 5th query lost
    (folder / ".pref-r00-000009.parquet.tmp").write_bytes(b"half a shard")  # a killed write
    resumed = FakePairwise()
    store = collect_preferences(
        resumed, QUERIES, CANDIDATES, passage_text, folder, depth=4, queries_per_shard=2
    )
    assert sorted(resumed.calls) == [QUERIES[q] for q in sorted(QUERIES)[4:]]
    assert not list(folder.glob(".*.tmp"))
    manifest = store.manifest
    assert manifest["counts"] == {
        "queries": 7,
        "skipped": 0,
        "pairs": 21,
        "docs": 28,
        "repairs": {k: 0 for k in manifest["counts"]["repairs"]},
    }
    total = manifest["cost"]["total"]
    assert total["forward_passes"] == 7 * 6 and total["tokens_in"] == 700  # never double counted
    assert manifest["cost"]["per_query"]["forward_passes"] == 6.0
    assert manifest["cost"]["sessions"] == 2 and total["wall_s"] >= 0
    again = FakePairwise()
    collect_preferences(again, QUERIES, CANDIDATES, passage_text, folder, depth=4)
    assert again.calls == []  # complete: nothing to do
    with pytest.raises(RKDError, match="another teacher"):
        collect_preferences(FakePairwise(name="other"), QUERIES, CANDIDATES, passage_text, folder)


def test_a_query_the_teacher_cannot_judge_is_skipped_and_counted(tmp_path: Path):
    teacher = FakePairwise(refuse="query 2")
    store = collect_preferences(teacher, QUERIES, CANDIDATES, passage_text, tmp_path / "p")
    assert len(store) == 6 and [r.query_id for r in store.skipped()] == ["q2"]
    assert store.manifest["counts"]["skipped"] == 1
    assert "prompt too long" in store.manifest["skipped"][0]["reason"]
    rerun = FakePairwise(refuse="query 2")
    collect_preferences(rerun, QUERIES, CANDIDATES, passage_text, tmp_path / "p")
    assert rerun.calls == []  # a skipped query is stored, not retried


def test_first_row_of_a_query_wins_and_corrupt_shards_are_reported(tmp_path: Path):
    write_shard(tmp_path, 0, [PreferenceRecord("q", ["a", "b"], np.array([[0, 1]]), [0.8])])
    write_shard(tmp_path, 0, [PreferenceRecord("q", ["b", "a"], np.array([[0, 1]]), [0.1])])
    record = PreferenceStore(tmp_path).get("q")
    assert record.doc_ids == ["a", "b"] and record.probs.tolist() == pytest.approx([0.8])
    (tmp_path / "pref-r00-000002.parquet").write_bytes(b"not parquet")
    with pytest.raises(RKDError, match="corrupt"):
        PreferenceStore(tmp_path)


def test_bradley_terry_recovers_a_known_order():
    rng = np.random.default_rng(0)
    truth = rng.permutation(8)  # truth[k] = the item at rank k
    strength = np.empty(8)
    strength[truth] = np.arange(8)[::-1]  # consistent, graded preferences
    pairs = np.array([(i, j) for i in range(8) for j in range(8) if i < j])
    probs = 1 / (1 + np.exp(-(strength[pairs[:, 0]] - strength[pairs[:, 1]])))
    theta = bradley_terry(8, pairs, probs)
    assert np.argsort(-theta).tolist() == truth.tolist()
    # the prior shrinks the gaps a little; with a tiny one the fit reproduces them
    assert (np.diff(theta[truth]) > -1.0).all()
    tiny_prior = bradley_terry(8, pairs, probs, prior=1e-6, iterations=5000)
    np.testing.assert_allclose(np.diff(tiny_prior[truth]), -1.0, atol=1e-3)
    # only adjacent pairs of the true order, hard-ish outcomes: still the right order
    chain = np.array([(truth[k], truth[k + 1]) for k in range(7)])
    assert np.argsort(-bradley_terry(8, chain, np.full(7, 0.99))).tolist() == truth.tolist()
    assert np.argsort(-win_rate(8, pairs, probs)).tolist() == truth.tolist()
    assert np.isfinite(bradley_terry(3, [[0, 1], [0, 2]], [1.0, 1.0])).all()  # sweeps stay finite
    assert np.isnan(win_rate(3, [[0, 1]], [0.5])[2])


def test_derived_score_stores(tmp_path: Path):
    prefs = collect_preferences(FakePairwise(), QUERIES, CANDIDATES, passage_text, tmp_path / "p")
    scores = preferences_to_scores(prefs, tmp_path / "bt", qrels={"q0": {"d5": 1}})
    assert isinstance(scores, ScoreStore) and len(scores) == 7
    row = scores.get("q0")
    assert row.doc_ids == ["d5", "d4", "d3", "d2", "d1", "d0"] and row.labels.tolist()[0] == 1
    manifest = scores.manifest
    assert manifest["teacher"]["score_transform"]["aggregate"] == "bradley_terry"
    assert manifest["cost"]["total"]["forward_passes"] == 7 * 10
    rate = preferences_to_scores(prefs, tmp_path / "bt", aggregate="win_rate")  # replaces it
    assert rate.get("q0").doc_ids[0] == "d5" and rate.get("q0").scores.max() <= 1.0
    half = preferences_to_scores(prefs, tmp_path / "half", query_ids=["q1", "q4", "nope"])
    assert half.query_ids() == ["q1", "q4"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(RKDError, match="refusing"):
        preferences_to_scores(prefs, tmp_path / "other")

    ranks = collect_preferences(FakeRanker(), QUERIES, CANDIDATES, passage_text, tmp_path / "r")
    assert ranks.manifest["counts"]["repairs"]["missing_ids"] == 7
    assert ranks.manifest["cost"]["per_query"]["tokens_out"] == 12.0
    rr = preferences_to_scores(ranks, tmp_path / "rr", transform="reciprocal_rank", k=60)
    assert rr.get("q3").doc_ids == ["d5", "d4", "d3", "d2", "d1", "d0"]
    np.testing.assert_allclose(rr.get("q3").scores, 1 / (60 + np.arange(1, 7)), rtol=1e-6)
    assert rr.manifest["teacher"]["score_transform"] == {
        "rank_transform": "reciprocal_rank",
        "k": 60,
    }
    unfinished = tmp_path / "u"
    write_shard(unfinished.mkdir() or unfinished, 0, [PreferenceRecord("q", ["a"])])
    with pytest.raises(RKDError, match="unfinished"):
        preferences_to_scores(PreferenceStore(unfinished), tmp_path / "x")


def test_every_loss_trains_from_stored_targets(tmp_path: Path):
    """A free score table, trained by each loss on the stored targets, learns the LLM's order."""
    prefs = collect_preferences(FakePairwise(), QUERIES, CANDIDATES, passage_text, tmp_path / "p")
    ranks = collect_preferences(FakeRanker(), QUERIES, CANDIDATES, passage_text, tmp_path / "r")
    pair_t = pairwise_targets(list(prefs))
    rank_t = ranking_targets([r.doc_ids for r in ranks])
    assert pair_t.pair_index.shape == (35, 3) and rank_t.teacher_scores.shape == (7, 6)
    losses = {
        "ranknet_from_pairs": lambda s: ranknet_from_pairs(
            s, pair_t.pair_index, pair_t.target_prob, pair_t.mask
        ),
        "listmle": lambda s: listmle(s, rank_t.teacher_scores, None, rank_t.mask),
        "cprd": lambda s: cprd(s, rank_t.teacher_scores, None, rank_t.mask)["loss"],
        "listwise_kl": lambda s: listwise_kl(s, rank_t.teacher_scores, None, rank_t.mask),
    }
    for name, loss in losses.items():
        # columns: pairwise rows keep the first-stage order d0..d5, ranking rows the LLM order
        table = torch.zeros(7, 6, requires_grad=True)
        optimizer = torch.optim.SGD([table], lr=1.0)
        first = None
        for _ in range(60):
            value = loss(table)
            first = float(value.detach()) if first is None else first
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
        assert float(loss(table).detach()) < first, name
        learned = table.detach()[0]
        if name == "ranknet_from_pairs":  # prefers higher doc numbers: d5 first
            assert torch.argsort(learned, descending=True).tolist() == [5, 4, 3, 2, 1, 0], name
        else:  # column 0 is the LLM's top-1
            assert torch.argsort(learned, descending=True)[0].item() == 0, name


def test_rank_transforms():
    assert rank_scores(3, "reciprocal_rank", k=0).tolist() == pytest.approx([1, 0.5, 1 / 3])
    with pytest.raises(RKDError):
        rank_scores(3, "softmax")
    targets = ranking_targets([["a", "b", "c"], ["x"]])
    assert targets.mask.tolist() == [[True, True, True], [True, False, False]]
    with pytest.raises(RKDError):
        ranking_targets([["a", "a"]])
