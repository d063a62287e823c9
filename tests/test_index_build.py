"""Chunked, resumable index builds and the ANN-vs-exact report."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from retrieval_kd.errors import RKDError
from retrieval_kd.index import (
    DenseIndex,
    ann_report,
    build_index,
    build_index_from_chunks,
    fastest_at_recall,
    plot_report,
    report_markdown,
)
from retrieval_kd.index.report import ndcg_vs_exact, recall_at_k
from retrieval_kd.manifest import sha256_file

DIM = 8
N = 500


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """One OpenMP thread: tiny indexes gain nothing from more, and stall on a busy machine."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(previous)


@pytest.fixture()
def table() -> dict[str, np.ndarray]:
    """A fake student: doc id -> a fixed vector, looked up from the doc's text."""
    rng = np.random.default_rng(0)
    return {f"d{i}": rng.standard_normal(DIM).astype(np.float32) for i in range(N)}


class Encoder:
    """Counts calls and encoded texts; raises on call number ``fail_on`` (1-based)."""

    def __init__(self, table: dict[str, np.ndarray], fail_on: int | None = None) -> None:
        self.table, self.fail_on, self.calls, self.texts = table, fail_on, 0, []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt("killed halfway")
        self.texts.extend(texts)
        return np.stack([self.table[t.removeprefix("text of ")] for t in texts])


def texts_for(ids) -> list[str]:
    return [f"text of {i}" for i in ids]


def test_killed_build_resumes_encoding_only_missing_chunks(table, tmp_path: Path) -> None:
    ids = list(table)
    options = {"index_type": "ivf", "chunk_size": 100, "student_hash": "s1"}
    with pytest.raises(KeyboardInterrupt):
        build_index(tmp_path / "ix", ids, texts_for, Encoder(table, fail_on=3), **options)
    assert len(list((tmp_path / "ix" / "chunks").glob("chunk_*.npy"))) == 2

    resumed = Encoder(table)
    index = build_index(tmp_path / "ix", ids, texts_for, resumed, **options)

    assert resumed.calls == 3  # chunks 3, 4 and 5 of 5
    assert resumed.texts == texts_for(ids[200:])
    build = json.loads((tmp_path / "ix" / "manifest.json").read_text())["build"]
    assert (build["chunks_reused"], build["chunks_encoded"], build["encoded_docs"]) == (2, 3, 300)
    assert not (tmp_path / "ix" / "chunks").exists()  # chunk files deleted once done

    whole = build_index(tmp_path / "whole", ids, texts_for, Encoder(table), **options)
    assert sha256_file(tmp_path / "ix" / "index.faiss") == sha256_file(
        tmp_path / "whole" / "index.faiss"
    )
    queries = np.stack([table["d0"], table["d7"]])
    assert index.search(queries, 10)[1] == whole.search(queries, 10)[1]
    assert index.ids == ids


def test_finished_build_is_not_redone(table, tmp_path: Path) -> None:
    ids = list(table)
    build_index(tmp_path / "ix", ids, texts_for, Encoder(table), chunk_size=128, student_hash="a")
    again = Encoder(table)
    index = build_index(tmp_path / "ix", ids, texts_for, again, chunk_size=128, student_hash="a")
    assert again.calls == 0 and index.ntotal == N

    other = Encoder(table)  # another student: everything is encoded again
    build_index(tmp_path / "ix", ids, texts_for, other, chunk_size=128, student_hash="b")
    assert other.calls == 4


def test_build_matches_direct_add_and_records_timings(table, tmp_path: Path) -> None:
    ids = list(table)
    built = build_index(
        tmp_path / "ix", ids, texts_for, Encoder(table), chunk_size=64, chunk_dtype="float32"
    )
    direct = DenseIndex(DIM)
    direct.add(ids, np.stack(list(table.values())))
    queries = np.stack([table["d3"], table["d400"]])

    assert built.search(queries, 5)[1] == direct.search(queries, 5)[1]
    np.testing.assert_array_equal(built.search(queries, 5)[0], direct.search(queries, 5)[0])
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    for key in ("encode_s", "encode_docs_per_s", "train_s", "add_s", "add_docs_per_s"):
        assert key in manifest["build"]
    assert manifest["count"] == N and manifest["size_on_disk_bytes"] > 0


def test_build_from_chunk_iterator_keeps_chunks_when_asked(table, tmp_path: Path) -> None:
    ids = list(table)
    chunks = ((ids[s : s + 200], texts_for(ids[s : s + 200])) for s in range(0, N, 200))
    encoder = Encoder(table)
    index = build_index_from_chunks(
        tmp_path / "ix",
        chunks,
        encoder,
        index_type="hnsw",
        metric="cosine",
        keep_chunks=True,
        total_chunks=3,
    )
    assert encoder.calls == 3 and index.ids == ids
    assert len(list((tmp_path / "ix" / "chunks").glob("chunk_*.npy"))) == 3
    assert index.search(table["d42"][None], 1)[1] == [["d42"]]


def test_encoder_returning_wrong_rows_is_refused(table, tmp_path: Path) -> None:
    with pytest.raises(RKDError, match="rows"):
        build_index(tmp_path / "ix", list(table), texts_for, lambda t: np.zeros((1, DIM)))


# ---------------------------------------------------------------------------- report


@pytest.fixture()
def indexes(table) -> tuple[DenseIndex, DenseIndex, np.ndarray]:
    vectors = np.stack(list(table.values()))
    flat, ivf = DenseIndex(DIM, "flat"), DenseIndex(DIM, "ivf", nlist=8)
    flat.add(list(table), vectors)
    ivf.add(list(table), vectors)
    queries = np.random.default_rng(1).standard_normal((30, DIM)).astype(np.float32)
    return flat, ivf, queries


def test_report_gives_recall_one_for_flat(indexes, tmp_path: Path) -> None:
    flat, _, queries = indexes
    rows = ann_report(flat, queries, flat, min_time_s=0)
    assert [r.recall for r in rows] == [1.0, 1.0]
    assert [r.ndcg10 for r in rows] == pytest.approx([1.0, 1.0])
    assert rows[0].setting == "-" and rows[0].qps > 0 and rows[0].index_bytes > 0
    table = report_markdown(rows)
    assert table.count("\n") == 4 and "| exact | - | 1.0000 | 1.0000 |" in table
    png = plot_report(rows, tmp_path / "plots" / "ann.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_sweeps_nprobe_up_to_exhaustive(indexes) -> None:
    flat, ivf, queries = indexes
    rows = ann_report(ivf, queries, flat, k=10, label="ivf", min_time_s=0)
    assert [r.setting for r in rows] == ["-", "nprobe=1", "nprobe=2", "nprobe=4", "nprobe=8"]
    assert rows[1].recall < 1.0 and rows[-1].recall == 1.0  # nprobe = nlist is exhaustive
    assert fastest_at_recall(rows[1:], 0.999).setting == "nprobe=8"
    assert fastest_at_recall(rows[1:], 1.01) is None


def test_report_accepts_exact_ids_and_a_qrels_metric(indexes) -> None:
    flat, ivf, queries = indexes
    exact_ids = flat.search(queries, 10)[1]
    qids = [f"q{i}" for i in range(len(queries))]
    qrels = {q: {ids[0]: 1} for q, ids in zip(qids, exact_ids, strict=True)}

    def success_at_1(run, judged) -> float:  # share of queries whose best hit is relevant
        return float(np.mean([max(run[q], key=run[q].get) in judged[q] for q in judged]))

    rows = ann_report(
        ivf,
        queries,
        exact_ids,
        values=[8],
        query_ids=qids,
        qrels=qrels,
        metric_fn=success_at_1,
        min_time_s=0,
    )
    assert [(r.setting, r.recall, r.ndcg10) for r in rows] == [("nprobe=8", 1.0, 1.0)]
    assert ann_report(ivf, queries, exact_ids, values=[1], min_time_s=0)[0].ndcg10 < 1.0


def test_recall_and_ndcg_against_exact() -> None:
    exact = [["a", "b", "c"], ["x", "y"]]
    assert recall_at_k([["a", "c", "z"], ["y", "x"]], exact, 3) == pytest.approx((2 / 3 + 1) / 2)
    assert ndcg_vs_exact(exact, exact, 10) == pytest.approx(1.0)
    swapped_out = ndcg_vs_exact([["z", "b", "c"]], [["a", "b", "c"]], 3)
    discounts = 1 / np.log2(np.arange(2, 5))
    assert swapped_out == pytest.approx(discounts[1:].sum() / discounts.sum())
