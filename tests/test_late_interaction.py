"""ColBERT late-interaction index: token-index candidates + exact MaxSim, vs exhaustive MaxSim."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from retrieval_kd.errors import RKDError
from retrieval_kd.index import IndexMismatchError
from retrieval_kd.index import late_interaction as li
from retrieval_kd.index.late_build import build_late_interaction_index
from retrieval_kd.index.late_interaction import LateInteractionIndex, maxsim
from retrieval_kd.index.late_report import late_interaction_report, late_report_markdown
from retrieval_kd.manifest import sha256_file

DIM, N_DOCS, CHUNK = 16, 300, 64


@pytest.fixture(autouse=True)
def one_faiss_thread():
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(previous)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture()
def table() -> dict[str, np.ndarray]:
    """A fake ColBERT: doc id -> a fixed unit token matrix of 3..12 tokens."""
    rng = np.random.default_rng(0)
    sizes = rng.integers(3, 13, N_DOCS)
    return {f"d{i}": unit(rng.standard_normal((n, DIM))) for i, n in enumerate(sizes)}


@pytest.fixture()
def queries() -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [unit(rng.standard_normal((8, DIM))) for _ in range(12)]


class Encoder:
    """Counts calls and encoded texts; raises on call number ``fail_on`` (1-based)."""

    def __init__(self, table: dict[str, np.ndarray], fail_on: int | None = None) -> None:
        self.table, self.fail_on, self.calls, self.texts = table, fail_on, 0, []

    def __call__(self, texts: list[str]) -> list[np.ndarray]:
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt("killed halfway")
        self.texts.extend(texts)
        return [self.table[t.removeprefix("text of ")] for t in texts]


def texts_for(ids) -> list[str]:
    return [f"text of {i}" for i in ids]


def build(folder: Path, table, encoder=None, **options) -> LateInteractionIndex:
    options = {"chunk_size": CHUNK, "student_hash": "s1", **options}
    return build_late_interaction_index(
        folder, list(table), texts_for, encoder or Encoder(table), **options
    )


def brute_force(table, queries, k) -> tuple[list[list[str]], list[list[float]]]:
    """Exact MaxSim by Python loops over fp16-rounded doc tokens (what the index stores)."""
    ids, scores = [], []
    for q in queries:
        found = {
            d: sum(
                max(float(qi @ dj) for dj in m.astype(np.float16).astype(np.float32)) for qi in q
            )
            for d, m in table.items()
        }
        ranked = sorted(found, key=lambda d: (found[d], d), reverse=True)[:k]  # the one rule
        ids.append(ranked)
        scores.append([found[d] for d in ranked])
    return ids, scores


def test_maxsim_matches_a_loop() -> None:
    rng = np.random.default_rng(2)
    docs = [rng.standard_normal((n, DIM)).astype(np.float32) for n in (1, 4, 7, 2)]
    qs = [rng.standard_normal((n, DIM)).astype(np.float32) for n in (3, 5)]
    starts = np.cumsum([0] + [len(d) for d in docs[:-1]])
    q_starts = [0, len(qs[0])]
    got = maxsim(np.concatenate(docs), starts, np.concatenate(qs), q_starts)
    assert got.shape == (4, 2)
    for i, d in enumerate(docs):
        for j, q in enumerate(qs):
            expected = sum(max(float(a @ b) for b in d) for a in q)
            assert got[i, j] == pytest.approx(expected, abs=1e-4)


def test_full_probe_pipeline_equals_exhaustive_and_brute_force(table, queries, tmp_path) -> None:
    index = build(tmp_path / "ix", table)
    assert index.manifest["factory"].startswith("IVF") and ",PQ" in index.manifest["factory"]
    assert index.ntotal == N_DOCS and index.ntokens == sum(len(m) for m in table.values())
    scores, ids = index.search(
        queries, k=10, nprobe=index.nlist, candidates_per_token=index.ntokens
    )
    exact_scores, exact_ids = index.exhaustive_search(queries, k=10)
    assert ids == exact_ids
    np.testing.assert_allclose(scores, exact_scores, atol=1e-3)
    loop_ids, loop_scores = brute_force(table, queries, 10)
    assert exact_ids == loop_ids
    np.testing.assert_allclose(exact_scores, loop_scores, atol=1e-3)


def test_exhaustive_blocks_and_query_groups_do_not_change_results(
    table, queries, tmp_path, monkeypatch
) -> None:
    index = build(tmp_path / "ix", table, index_type="flat")
    whole_scores, whole_ids = index.exhaustive_search(queries, k=7)
    monkeypatch.setattr(li, "MAX_SCORE_CELLS", 50)  # 10-token blocks -> groups of 5 tokens
    scores, ids = index.exhaustive_search(queries, k=7, block_tokens=10)
    assert ids == whole_ids
    np.testing.assert_allclose(scores, whole_scores, atol=1e-5)


def test_report_sweeps_to_recall_one_and_counts_candidates(table, queries, tmp_path) -> None:
    index = build(tmp_path / "ix", table)
    settings = [(1, 4), (4, 16), (index.nlist, index.ntokens)]
    rows = late_interaction_report(index, queries, settings, ks=(10, 50))
    assert [r.setting for r in rows][0] == "exhaustive" and len(rows) == 4
    assert rows[-1].recall == {10: 1.0, 50: 1.0} and rows[-1].candidates == N_DOCS
    assert rows[1].candidates < rows[2].candidates <= N_DOCS
    assert rows[1].recall[10] <= rows[-1].recall[10]
    table_md = late_report_markdown(rows)
    assert "recall@10" in table_md and "recall@50" in table_md
    assert len(table_md.strip().splitlines()) == 2 + len(rows)


def test_save_load_search_identical_and_finished_build_not_redone(table, queries, tmp_path) -> None:
    built = build(tmp_path / "ix", table)
    loaded = LateInteractionIndex.load(tmp_path / "ix", expected_student_hash="s1")
    for kwargs in ({}, {"nprobe": 2, "candidates_per_token": 8}):
        a, b = built.search(queries, 20, **kwargs), loaded.search(queries, 20, **kwargs)
        assert a[1] == b[1]
        np.testing.assert_array_equal(a[0], b[0])
    again = Encoder(table)
    build(tmp_path / "ix", table, again)
    assert again.calls == 0
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["kind"] == "late_interaction_index" and manifest["tokens"] == built.ntokens
    assert manifest["size_on_disk_bytes"] > built.ntokens * DIM * 2
    assert not (tmp_path / "ix" / "chunks").exists()


def test_truncated_or_missing_files_and_other_student_are_refused(table, tmp_path) -> None:
    build(tmp_path / "ix", table)
    with pytest.raises(IndexMismatchError, match="student"):
        LateInteractionIndex.load(tmp_path / "ix", expected_student_hash="another")
    tokens = tmp_path / "ix" / "tokens.f16"
    data = tokens.read_bytes()
    tokens.write_bytes(data[: len(data) // 2])
    with pytest.raises(RKDError, match="truncated"):
        LateInteractionIndex.load(tmp_path / "ix", verify=False)
    tokens.unlink()
    with pytest.raises(RKDError, match="missing"):
        LateInteractionIndex.load(tmp_path / "ix")


def test_killed_build_resumes_encoding_only_missing_chunks(table, queries, tmp_path) -> None:
    ids = list(table)
    with pytest.raises(KeyboardInterrupt):
        build(tmp_path / "ix", table, Encoder(table, fail_on=3))
    assert len(list((tmp_path / "ix" / "chunks").glob("chunk_*.len.npy"))) == 2
    assert not (tmp_path / "ix" / "manifest.json").exists()

    resumed = Encoder(table)
    index = build(tmp_path / "ix", table, resumed)
    assert resumed.calls == 3  # chunks 3, 4 and 5 of 5
    assert resumed.texts == texts_for(ids[2 * CHUNK :])
    build_info = index.manifest["build"]
    assert (build_info["chunks_reused"], build_info["chunks_encoded"]) == (2, 3)

    whole = build(tmp_path / "whole", table)
    for name in ("tokens.f16", "offsets.npy", "token_index.faiss"):
        assert sha256_file(tmp_path / "ix" / name) == sha256_file(tmp_path / "whole" / name)
    assert index.search(queries, 10)[1] == whole.search(queries, 10)[1]


def test_bad_encoder_output_is_refused(table, tmp_path) -> None:
    with pytest.raises(RKDError, match="2 token matrices for"):
        build(tmp_path / "a", table, lambda texts: [table["d0"], table["d1"]])
    with pytest.raises(RKDError, match="token matrix of doc"):
        build(tmp_path / "b", table, lambda texts: [np.zeros((0, DIM))] * len(texts))


def test_colbert_student_cli_index_and_search(toy_beir: Path, tmp_path: Path) -> None:
    """A tiny random ColBERT checkpoint through ``rkd index`` / ``rkd search``."""
    import torch
    from tiny_models import tiny_bert_config, tiny_tokenizer
    from transformers import BertModel
    from typer.testing import CliRunner

    from retrieval_kd.cli import app
    from retrieval_kd.data import load_dataset, read_run
    from retrieval_kd.retrieval import TokenEncoder
    from students.colbert import ColBERTStudent

    backbone = tmp_path / "backbone"
    torch.manual_seed(0)
    BertModel(tiny_bert_config()).save_pretrained(backbone)
    tiny_tokenizer().save_pretrained(backbone)
    ColBERTStudent(str(backbone), dim=DIM, query_length=8, document_length=24).save(
        tmp_path / "colbert"
    )
    data = str(toy_beir)
    runner = CliRunner()
    out = runner.invoke(
        app,
        [
            "-q",
            "index",
            "--student",
            str(tmp_path / "colbert"),
            "--data",
            data,
            "--out",
            str(tmp_path / "idx"),
        ],
    )
    assert out.exit_code == 0, out.output
    assert "late-interaction index" in out.output
    manifest = json.loads((tmp_path / "idx" / "manifest.json").read_text())
    assert manifest["kind"] == "late_interaction_index" and manifest["count"] == 5
    out = runner.invoke(
        app,
        [
            "-q",
            "search",
            "--index",
            str(tmp_path / "idx"),
            "--queries",
            f"{data}/test",
            "--k",
            "3",
            "--out",
            str(tmp_path / "run.trec"),
        ],
    )
    assert out.exit_code == 0, out.output
    run = read_run(tmp_path / "run.trec")

    dataset = load_dataset(data, "test")
    encoder = TokenEncoder(tmp_path / "colbert")
    doc_ids = dataset.corpus.ids
    docs = encoder.encode_passages(dataset.corpus.texts(doc_ids))
    table = dict(zip(doc_ids, docs, strict=True))
    query_ids = sorted(dataset.queries)
    matrices = encoder.encode_queries([dataset.queries[q] for q in query_ids])
    expected_ids, expected_scores = brute_force(table, matrices, 3)
    assert sorted(run) == query_ids
    for q, ids, scores in zip(query_ids, expected_ids, expected_scores, strict=True):
        ranked = sorted(run[q], key=lambda d: -run[q][d])
        assert ranked == ids
        assert [run[q][d] for d in ranked] == pytest.approx(scores, abs=1e-3)

    out = runner.invoke(
        app,
        [
            "-q",
            "index-report",
            "--index",
            str(tmp_path / "idx"),
            "--queries",
            f"{data}/test",
            "--k",
            "3",
            "--out",
            str(tmp_path / "report"),
        ],
    )
    assert out.exit_code == 0, out.output
    rows = json.loads((tmp_path / "report" / "report.json").read_text())["rows"]
    assert rows[0]["setting"] == "exhaustive" and rows[-1]["recall"] == {"3": 1.0}
    assert (tmp_path / "report" / "report.png").is_file()
