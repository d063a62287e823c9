"""Candidate sources: dense retrieval equals exact search, fusion equals ranx's, the BM25
teacher equals BM25's own scores, and bad specs fail before anything is retrieved."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import write_beir_folder
from test_pipeline import toy_collection
from tiny_models import save_tiny_sentence_transformer

from retrieval_kd.candidates import (
    bm25_candidates,
    dense_candidates,
    fuse_runs,
    parse_sources,
    retrieve_candidates,
)
from retrieval_kd.data import load_dataset, ranked_doc_ids
from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.models.arithmetic import inference_dtype


@pytest.fixture
def toy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    folder = toy_collection(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    student = save_tiny_sentence_transformer(tmp_path / "student", seed=0)
    return load_dataset(str(folder), "train"), student


def test_dense_run_equals_brute_force_search(toy) -> None:
    from sentence_transformers import SentenceTransformer

    data, student = toy
    run, cost = dense_candidates(str(student), data.corpus, data.queries, k=5)
    model = SentenceTransformer(str(student))
    model.to(inference_dtype("auto", model.device))  # the miner's arithmetic (bf16 where native)
    ids = data.corpus.ids
    docs = model.encode_document(data.corpus.texts(ids), convert_to_numpy=True)
    for q, text in data.queries.items():
        exact = docs @ model.encode_query([text], convert_to_numpy=True)[0]
        top = [ids[i] for i in np.argsort(-exact, kind="stable")[:5]]
        assert list(run[q]) == top or sorted(run[q]) == sorted(top)  # float16 storage: ties
        assert np.allclose([run[q][d] for d in top], np.sort(exact)[::-1][:5], atol=2e-3)
    assert cost["vectors"] == len(ids) and Path(cost["index"]).is_dir()
    again, second = dense_candidates(str(student), data.corpus, data.queries, k=5)
    assert again == run and second["index"] == cost["index"]  # the cached index is reused


def _tie_free(rng: np.random.Generator, queries: int, docs: int, depth: int) -> dict:
    return {
        f"q{q}": {
            f"d{d}": float(s)
            for d, s in zip(
                rng.choice(docs, depth, replace=False), rng.permutation(depth) + 1.0, strict=True
            )
        }
        for q in range(queries)
    }


def test_rrf_equals_ranx_and_union_keeps_every_source() -> None:
    from ranx import Run, fuse

    rng = np.random.default_rng(0)
    a, b = _tie_free(rng, 5, 40, 10), _tie_free(rng, 5, 40, 10)
    ours = fuse_runs([a, b], "rrf", depth=None)
    theirs = fuse([Run(a), Run(b)], method="rrf").to_dict()
    for q in a:
        assert ranked_doc_ids(ours[q]) == ranked_doc_ids(theirs[q])
        assert np.allclose([ours[q][d] for d in theirs[q]], list(theirs[q].values()))
        by_formula = {}
        for run in (a, b):
            for rank, d in enumerate(ranked_doc_ids(run[q]), start=1):
                by_formula[d] = by_formula.get(d, 0.0) + 1 / (60 + rank)
        assert np.allclose([ours[q][d] for d in by_formula], list(by_formula.values()))
    top = fuse_runs([a, b], "rrf", depth=4)
    union = fuse_runs([a, b], "union", depth=4)
    for q in a:
        assert len(top[q]) == 4
        assert set(union[q]) == set(ranked_doc_ids(a[q], 4)) | set(ranked_doc_ids(b[q], 4))


def test_fusion_refuses_other_query_sets_and_unknown_methods() -> None:
    with pytest.raises(InputError, match="different query sets: bm25 and dense"):
        fuse_runs([{"q1": {"a": 1.0}}, {"q2": {"a": 1.0}}], names=["bm25", "dense"])
    with pytest.raises(InputError, match="unknown fusion"):
        fuse_runs([{"q1": {"a": 1.0}}], "borda")
    # a source that found nothing for a query leaves the other source's ranking as it is
    fused = fuse_runs([{"q": {}}, {"q": {"a": 2.0, "b": 1.0}}], "rrf")
    assert ranked_doc_ids(fused["q"]) == ["a", "b"]


def test_bad_source_specs_fail_before_retrieval(tmp_path: Path) -> None:
    with pytest.raises(RKDError, match="no-such-org/no-such-retriever"):
        parse_sources(["bm25", "dense:no-such-org/no-such-retriever"])
    with pytest.raises(InputError, match="not bm25, dense:<model>, nor an existing TREC run"):
        parse_sources(["nowhere.trec"])
    with pytest.raises(InputError, match="listed twice"):
        parse_sources(["bm25", "bm25"])
    with pytest.raises(InputError, match="at least one"):
        parse_sources([])


def test_bm25_teacher_equals_the_run_teacher_on_bm25_candidates(toy) -> None:
    from teachers import build_teacher

    data, _ = toy
    run, _ = bm25_candidates(data.corpus, data.queries, k=6)
    qids = sorted(run)
    docs = [list(run[q]) for q in qids]
    texts = [data.queries[q] for q in qids]
    passages = [data.corpus.texts(d) for d in docs]
    kwargs = {"query_ids": qids, "doc_ids": docs}
    bm25 = build_teacher("bm25", corpus=data.corpus).score(texts, passages, **kwargs)
    listed = build_teacher("run", candidates=run).score(texts, passages, **kwargs)
    for ours, theirs in zip(bm25, listed, strict=True):
        assert np.allclose(ours, theirs, atol=1e-5)
    # and it scores documents BM25's top k left out: 0 where no query term occurs
    other = [d for d in data.corpus.ids if d not in run[qids[0]]]
    scores = build_teacher("bm25", corpus=data.corpus).score(
        [texts[0]], [data.corpus.texts(other)], query_ids=[qids[0]], doc_ids=[other]
    )[0]
    assert scores.shape == (len(other),) and (scores >= 0).all()
    with pytest.raises(RKDError, match="give the corpus"):
        build_teacher("bm25")


def test_retrieve_candidates_fuses_bm25_and_dense(toy) -> None:
    data, student = toy
    sources = parse_sources(["bm25", f"dense:{student}"])
    run, records = retrieve_candidates(sources, data.corpus, data.queries, 4, fusion="union")
    bm25, _ = bm25_candidates(data.corpus, data.queries, k=4)
    dense, _ = dense_candidates(str(student), data.corpus, data.queries, k=4)
    for q in data.queries:
        assert set(run[q]) == set(bm25[q]) | set(dense[q])
    assert set(records) == {"bm25", f"dense:{student}"}
    assert records[f"dense:{student}"]["kind"] == "dense"


def test_cli_dense_and_fused_candidates(toy, tmp_path: Path) -> None:
    from test_cli import rkd

    data, student = toy
    folder = Path(data.name)
    out = tmp_path / "fused.trec"
    args = ["candidates", "--data", str(folder), "--split", "train", "--k", "3", "--out", str(out)]
    done = rkd("--quiet", *args, "--retriever", str(student), "--fuse", "rrf", env_data_dir=folder)
    assert done.returncode == 0, done.stderr
    manifest = json.loads(Path(f"{out}.manifest.json").read_text())
    assert manifest["fusion"] == "rrf" and set(manifest["sources"]) == {"bm25", f"dense:{student}"}
    bad = rkd("--quiet", *args, "--retriever", "no-such-org/none", env_data_dir=folder)
    assert bad.returncode == 2 and "no-such-org/none" in bad.stderr
    bad = rkd("--quiet", *args, "--fuse", "rrf", env_data_dir=folder)
    assert bad.returncode == 2 and "give --retriever" in bad.stderr


def test_run_file_source_is_cut_to_the_queries(tmp_path: Path) -> None:
    docs = [{"_id": f"d{i}", "title": "", "text": f"word{i} common"} for i in range(4)]
    folder = write_beir_folder(
        tmp_path / "c",
        docs,
        [{"_id": "q1", "text": "word1"}, {"_id": "q2", "text": "x"}],
        {"test": [("q1", "d1", 1)]},
    )
    (tmp_path / "r.trec").write_text("q1 Q0 d2 1 3.0 r\nq1 Q0 d1 2 2.0 r\nq2 Q0 d3 1 1.0 r\n")
    data = load_dataset(str(folder), "test")
    run, records = retrieve_candidates(
        parse_sources([str(tmp_path / "r.trec")]),
        data.corpus,
        data.queries,
        1,
        known_queries=data.load_all_queries(),
    )
    assert run == {"q1": {"d2": 3.0}} and records[str(tmp_path / "r.trec")]["kind"] == "run"


def test_passage_length_at_index_time_is_part_of_the_cache_key(toy) -> None:
    from retrieval_kd.candidates.dense import dense_index_folder
    from retrieval_kd.retrieval import StudentEncoder

    data, student = toy
    plain = StudentEncoder(str(student))
    longer = StudentEncoder(str(student), passage_max_length=48)
    assert longer.model[0].document_length == 48
    assert longer.model[0].query_length == plain.model.max_seq_length  # queries unchanged
    assert dense_index_folder(data.corpus, plain, "flat") != dense_index_folder(
        data.corpus, longer, "flat"
    )
