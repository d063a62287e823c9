"""DenseIndex: exact search, index types, save/load integrity, manifest checks, sizing rules."""

from __future__ import annotations

import json
from pathlib import Path

import faiss
import numpy as np
import pytest

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.index import INDEX_TYPES, DenseIndex, IndexMismatchError, plan_index
from retrieval_kd.index.factory import (
    default_nlist,
    default_nprobe,
    default_pq_m,
    default_pq_nbits,
    default_train_size,
)
from retrieval_kd.index.storage import INDEX_FILE

DIM = 16


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(autouse=True)
def one_faiss_thread():
    """One OpenMP thread: tiny indexes gain nothing from more, and stall on a busy machine."""
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(previous)


@pytest.fixture()
def corpus() -> tuple[list[str], np.ndarray, np.ndarray]:
    """1000 clustered unit vectors, their ids, and 20 queries near corpus vectors."""
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, DIM))
    vectors = _unit(centres[rng.integers(0, 20, 1000)] + 0.5 * rng.standard_normal((1000, DIM)))
    queries = _unit(vectors[:20] + 0.1 * rng.standard_normal((20, DIM)))
    return [f"doc{i}" for i in range(1000)], vectors, queries


def _brute_force(vectors: np.ndarray, queries: np.ndarray, k: int, metric: str):
    if metric == "cosine":
        vectors, queries = _unit(vectors), _unit(queries)
    if metric == "l2":
        scores = -((queries[:, None, :] - vectors[None, :, :]) ** 2).sum(-1)
    else:
        scores = queries @ vectors.T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
def test_flat_search_matches_numpy_brute_force(metric: str) -> None:
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((300, DIM)).astype(np.float32)
    queries = rng.standard_normal((7, DIM)).astype(np.float32)
    index = DenseIndex(DIM, "flat", metric)
    index.add([f"d{i}" for i in range(300)], vectors)

    scores, ids = index.search(queries, k=10)

    want_scores, want_order = _brute_force(vectors, queries, 10, metric)
    assert ids == [[f"d{j}" for j in row] for row in want_order]
    np.testing.assert_allclose(scores, want_scores, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("index_type", INDEX_TYPES)
def test_every_named_type_builds_and_searches(index_type: str, corpus) -> None:
    ids, vectors, queries = corpus
    index = DenseIndex(DIM, index_type)
    index.add(ids, vectors)

    scores, found = index.search(queries, k=10)

    assert index.ntotal == 1000 and scores.shape == (20, 10)
    assert all(len(row) == 10 and set(row) <= set(ids) for row in found)
    assert np.all(np.diff(scores, axis=1) <= 1e-5)  # best first
    hits = sum(f"doc{q}" in row for q, row in enumerate(found))  # query q is near doc q
    assert hits >= (8 if "pq" in index_type else 18)  # PQ2x4 codes are 8 bits a vector


def test_factory_string_passes_through_with_placeholders(corpus) -> None:
    ids, vectors, queries = corpus
    index = DenseIndex(DIM, "IVF{nlist},SQ8", nlist=8)
    index.add(ids, vectors)
    _, found = index.search(queries, k=5, nprobe=8)

    assert index.factory == "IVF8,SQ8" and index.plan.nprobe == 8
    assert sum(f"doc{q}" in row for q, row in enumerate(found)) >= 18
    assert plan_index("PCA8,Flat", DIM, 1000).factory == "PCA8,Flat"
    with pytest.raises(RKDError, match="cannot make index"):
        DenseIndex(DIM, "NoSuchIndex12").add(ids, vectors)


@pytest.mark.parametrize("index_type", ["flat", "ivf", "hnsw", "opq-ivfpq"])
def test_save_load_search_is_identical(index_type: str, corpus, tmp_path: Path) -> None:
    ids, vectors, queries = corpus
    index = DenseIndex(DIM, index_type, "cosine", student_hash="s1")
    index.add(ids, vectors)
    if index.plan.nlist:
        index.set_search_defaults(nprobe=4)
    if index.plan.ef_search:
        index.set_search_defaults(ef_search=40)
    before = index.search(queries, k=10)

    index.save(tmp_path / "ix")
    loaded = DenseIndex.load(tmp_path / "ix", expected_student_hash="s1", expected_dim=DIM)
    after = loaded.search(queries, k=10)

    assert after[1] == before[1]
    np.testing.assert_array_equal(after[0], before[0])
    assert (loaded.metric, loaded.factory, loaded.ids) == ("cosine", index.factory, ids)
    assert (loaded.nprobe, loaded.ef_search) == (index.nprobe, index.ef_search)
    manifest = json.loads((tmp_path / "ix" / "manifest.json").read_text())
    assert manifest["count"] == 1000 and manifest["dim"] == DIM
    assert manifest["files"]["index"]["bytes"] == (tmp_path / "ix" / INDEX_FILE).stat().st_size


@pytest.fixture()
def saved(corpus, tmp_path: Path) -> Path:
    ids, vectors, _ = corpus
    index = DenseIndex(DIM, "ivf", student_hash="student-a")
    index.add(ids, vectors)
    return index.save(tmp_path / "ix")


def test_truncated_index_file_is_input_error(saved: Path) -> None:
    path = saved / INDEX_FILE
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated") as err:
        DenseIndex.load(saved)
    assert err.value.path == str(path)


def test_corrupted_index_file_is_input_error(saved: Path) -> None:
    path = saved / INDEX_FILE
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="SHA-256 differs from manifest.json: the file is"):
        DenseIndex.load(saved, verify="full")


def test_default_check_samples_the_file_and_full_hash_is_on_request(
    saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import retrieval_kd.index.storage as storage

    hashed: list[Path] = []
    full_hash = storage.sha256_file
    monkeypatch.setattr(storage, "sha256_file", lambda p: hashed.append(p) or full_hash(p))
    DenseIndex.load(saved)  # size + sampled blocks: no full read of any file
    assert hashed == []
    DenseIndex.load(saved, verify="full")
    assert sorted(p.name for p in hashed) == ["ids.txt", INDEX_FILE]
    path = saved / INDEX_FILE
    data = bytearray(path.read_bytes())
    data[100] ^= 0xFF  # the header: in the first sampled block
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="sampled SHA-256 differs"):
        DenseIndex.load(saved)
    with pytest.raises(RKDError, match="verify must be one of"):
        DenseIndex.load(saved, verify="quick")


def test_sampled_hash_reads_at_most_one_mebibyte(tmp_path: Path) -> None:
    from retrieval_kd.manifest import sample_sha256

    big = tmp_path / "big.bin"
    big.write_bytes(bytes(8 << 20))
    before = sample_sha256(big)
    with open(big, "r+b") as handle:  # a byte between two sampled blocks: not seen
        handle.seek((8 << 20) // 15 // 2)
        handle.write(b"\x01")
    assert sample_sha256(big) == before
    with open(big, "r+b") as handle:  # the last block is always sampled
        handle.seek((8 << 20) - 10)
        handle.write(b"\x01")
    assert sample_sha256(big) != before


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_loaded_indexes_are_memory_mapped_and_read_only(corpus, tmp_path: Path, kind: str) -> None:
    ids, vectors, queries = corpus
    index = DenseIndex(DIM, kind, student_hash="s")
    index.add(ids, vectors)
    index.save(tmp_path / kind)
    mapped = DenseIndex.load(tmp_path / kind)
    whole = DenseIndex.load(tmp_path / kind, mmap=False)
    assert (mapped.memory_mapped, whole.memory_mapped) == (True, False)
    got, want = mapped.search(queries, k=5), whole.search(queries, k=5)
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1] == want[1]
    with pytest.raises(RKDError, match="memory-mapped"):
        mapped.add(["new"], vectors[:1])
    whole.add(["new"], vectors[:1])
    assert whole.ntotal == len(ids) + 1


def test_garbage_that_faiss_cannot_read_is_input_error(saved: Path) -> None:
    path = saved / INDEX_FILE
    path.write_bytes(b"x" * path.stat().st_size)  # same size: only FAISS itself can tell
    with pytest.raises(InputError, match="FAISS cannot read"):
        DenseIndex.load(saved, verify=False)


def test_missing_files_are_input_errors(saved: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no manifest"):
        DenseIndex.load(tmp_path / "nowhere")
    (saved / "ids.txt").unlink()
    with pytest.raises(InputError, match="missing file"):
        DenseIndex.load(saved)


def test_manifest_mismatch_is_refused(saved: Path, corpus) -> None:
    with pytest.raises(IndexMismatchError, match="student-a"):
        DenseIndex.load(saved, expected_student_hash="student-b")
    with pytest.raises(IndexMismatchError, match="768"):
        DenseIndex.load(saved, expected_dim=768)
    index = DenseIndex.load(saved, expected_student_hash="student-a", expected_dim=DIM)
    with pytest.raises(IndexMismatchError, match="8-d"):
        index.search(np.zeros((2, 8), np.float32))
    assert issubclass(IndexMismatchError, RKDError)


def test_bad_inputs_are_refused(corpus) -> None:
    ids, vectors, _ = corpus
    index = DenseIndex(DIM)
    with pytest.raises(RKDError, match="empty"):
        index.search(vectors[:1])
    index.add(ids[:10], vectors[:10])
    with pytest.raises(RKDError, match="added twice"):
        index.add(["new", "doc3"], vectors[:2])
    with pytest.raises(RKDError, match="ids for"):
        index.add(["a"], vectors[:2])
    with pytest.raises(RKDError, match="NaN"):
        index.add(["a"], np.full((1, DIM), np.nan, np.float32))
    with pytest.raises(RKDError, match="does not apply"):
        index.search(vectors[:1], nprobe=4)
    assert index.ntotal == 10  # refused adds left the index as it was


def test_fewer_hits_than_k_give_short_rows() -> None:
    index = DenseIndex(4)
    index.add(["a", "b"], np.eye(2, 4, dtype=np.float32))
    scores, ids = index.search(np.eye(1, 4, dtype=np.float32), k=5)
    assert ids == [["a", "b"]]
    assert np.isfinite(scores[0, :2]).all() and np.isneginf(scores[0, 2:]).all()


def test_sizing_rules() -> None:
    assert default_nlist(200_000) == 1789
    assert default_nlist(1000) == 25  # capped at 39 points per list
    assert default_nlist(10) == 1
    assert default_train_size(200_000, 1789) == 200_000
    assert default_train_size(10_000_000, 16_000) == 39 * 16_000  # cap below 39 per list
    assert (default_pq_m(384), default_pq_m(768), default_pq_m(100)) == (48, 96, 10)
    assert (default_pq_nbits(1_000_000), default_pq_nbits(1000)) == (8, 4)
    assert (default_nprobe(8), default_nprobe(1789), default_nprobe(16_384)) == (8, 27, 256)
    plan = plan_index("opq-ivfpq", 384, 1_000_000)
    assert plan.factory == "OPQ48,IVF4000,PQ48x8" and plan.train_size == 500_000
    assert plan_index("hnsw", 384, 10, hnsw_m=16).factory == "HNSW16"
    with pytest.raises(RKDError, match="must divide"):
        plan_index("ivfpq", 384, 1000, pq_m=7)
    with pytest.raises(RKDError, match="unknown metric"):
        plan_index("flat", 384, 1000, metric="hamming")


def test_gpu_is_optional_and_required_only_when_asked() -> None:
    from retrieval_kd.index import gpu

    if gpu.num_gpus() > 0:
        pytest.skip("this FAISS sees a GPU: the CPU-only guard cannot be exercised")
    assert gpu.want_gpu(None) is False and gpu.want_gpu(False) is False
    with pytest.raises(RKDError, match="no GPU"):
        DenseIndex(DIM, use_gpu=True)
