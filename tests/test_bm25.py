"""BM25 candidates: sensible ranking on a toy corpus, index saved once and reused."""

from __future__ import annotations

from pathlib import Path

import pytest

from retrieval_kd.candidates import BM25Index, bm25_candidates
from retrieval_kd.data import load_dataset


def test_bm25_ranks_matching_documents_first(toy_beir: Path) -> None:
    ds = load_dataset(str(toy_beir), "test")
    run, cost = bm25_candidates(ds.corpus, ds.queries, k=3)
    assert set(run) == {"q1", "q2", "q3"}
    assert max(run["q1"], key=run["q1"].get) == "d1"  # stems: panels/panel, electricity
    assert max(run["q2"], key=run["q2"].get) == "d3"
    assert list(run["q3"]) == ["d2"]  # only documents sharing a term are returned
    assert cost["queries_per_s"] > 0


def test_bm25_index_is_built_once(toy_beir: Path, monkeypatch) -> None:
    corpus = load_dataset(str(toy_beir), "test").corpus
    first = BM25Index.open(corpus)
    built: list[int] = []
    monkeypatch.setattr(BM25Index, "_build", staticmethod(lambda *a: built.append(1)))
    second = BM25Index.open(corpus)
    assert built == [] and second.folder == first.folder
    assert second.search({"q": "solar panels"}, k=1) == first.search({"q": "solar panels"}, k=1)


@pytest.mark.real_data
def test_bm25_scifact_test_ndcg(data_dir: Path) -> None:
    """Published BM25 on SciFact is 0.665; bm25s with English stemming gives 0.686."""
    from evaluation import evaluate

    ds = load_dataset("scifact", "test")
    run, _ = bm25_candidates(ds.corpus, ds.queries, k=100)
    result = evaluate(run, ds.qrels, ["ndcg@10"], conventions="beir")
    assert result.means["ndcg@10"] >= 0.66
