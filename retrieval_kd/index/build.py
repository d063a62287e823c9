"""Chunked, resumable index building: encode a corpus chunk by chunk, then train and add.

1. **Encode.** Chunk ``i`` of the corpus is encoded and written to
   ``out_dir/chunks/chunk_{i:06d}_{fp}.npy`` (float16 by default) through a temporary file and
   an atomic ``os.replace``. ``fp`` fingerprints the chunk's doc ids, the student hash and the
   dtype, so a run killed halfway re-encodes only the chunks that have no file yet, and a chunk
   file is never reused for other ids or another student.
2. **Train** the index on a seeded random sample of the encoded vectors (size from the
   ``factory`` rules), gathered from memory-mapped chunk files.
3. **Add** the vectors chunk by chunk from the memory-mapped files: memory is bounded by a chunk
   (plus the training sample and the index itself), not by the corpus.
4. **Save** the index folder (see :class:`DenseIndex`), with encode / train / add timings and
   docs/s in the manifest, then delete the chunk files unless ``keep_chunks``.

Re-running :func:`build_index` on a finished folder with the same ids, student hash and settings
loads and returns the index instead of rebuilding it (``force=True`` rebuilds).

Vectors pass through float16 on disk by default: they differ from the encoder's float32 output
by about 1e-3 relative, far below what changes a ranking in practice; ``chunk_dtype="float32"``
keeps them exact at twice the disk space.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.index.dense import DenseIndex
from retrieval_kd.index.factory import create_index, plan_index
from retrieval_kd.index.vectors import as_matrix
from retrieval_kd.manifest import fingerprint, measure, read_manifest
from retrieval_kd.progress import progress

CHUNKS_DIR = "chunks"
EncodeFn = Callable[[list[str]], Any]
TextsFor = Callable[[Sequence[str]], Sequence[str]]


def _ids_digest(ids: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for doc_id in ids:
        digest.update(doc_id.encode("utf-8") + b"\n")
    return digest.hexdigest()


def build_index(
    out_dir: str | Path,
    ids: Sequence[str],
    texts_for: TextsFor,
    encode: EncodeFn,
    *,
    chunk_size: int = 10_000,
    force: bool = False,
    **options: Any,
) -> DenseIndex:
    """Encode ``ids``' texts chunk by chunk and build an index of them in ``out_dir``.

    Args:
        out_dir: the index folder (chunk files go under ``out_dir/chunks/``).
        ids: every doc id of the corpus, in index order.
        texts_for: returns the texts of a chunk of ids (called only for chunks still to encode).
        encode: texts -> vectors; a student's passage encoder.
        chunk_size: docs per chunk (one encode call and one chunk file each).
        force: rebuild even when ``out_dir`` already holds this very index.
        **options: see :func:`build_index_from_chunks` (index_type, metric, student_hash, ...).

    Returns:
        The built (or already built) index.

    Shapes:
        ids: N strings; encode: n texts -> [n, D].
    """
    if chunk_size < 1:
        raise RKDError(f"chunk_size must be >= 1, got {chunk_size}")
    ids = list(ids)
    if len(set(ids)) != len(ids):
        raise RKDError("doc ids repeat: every doc id must be indexed once")
    key = _settings_key(_ids_digest(ids), chunk_size, options)
    if not force:
        done = _finished(Path(out_dir), key, options.get("student_hash"))
        if done is not None:
            return done
    starts = range(0, len(ids), chunk_size)

    def chunks() -> Iterator[tuple[list[str], Callable[[], Sequence[str]]]]:
        for start in starts:
            part = ids[start : start + chunk_size]
            yield part, lambda part=part: texts_for(part)

    return _build(Path(out_dir), chunks(), len(starts), encode, key, **options)


def build_index_from_chunks(
    out_dir: str | Path,
    chunks: Iterable[tuple[Sequence[str], Sequence[str]]],
    encode: EncodeFn,
    *,
    total_chunks: int | None = None,
    **options: Any,
) -> DenseIndex:
    """Like :func:`build_index`, from an iterable of ``(ids, texts)`` chunks (e.g. a stream).

    Chunks are numbered in iteration order, so a resumed run must yield the same chunks. The
    texts of a chunk that is already encoded are ignored. Unlike :func:`build_index` it cannot
    tell a finished folder without reading the stream, so it always trains and adds again.

    Args:
        out_dir: the index folder.
        chunks: ``(ids, texts)`` pairs of equal length.
        encode: texts -> vectors.
        total_chunks: number of chunks, for the progress bar only.
        **options: ``index_type`` ("flat"), ``metric`` ("ip"), ``student_hash``, ``keep_chunks``
            (False), ``chunk_dtype`` ("float16"), ``nlist``, ``pq_m``, ``pq_nbits``,
            ``hnsw_m``, ``train_size``, ``use_gpu``, ``seed`` (0), ``extra`` (more manifest
            fields, e.g. the corpus hash; part of the settings fingerprint).

    Returns:
        The built index.
    """
    pairs = ((list(i), lambda t=t: t) for i, t in chunks)
    return _build(Path(out_dir), pairs, total_chunks, encode, None, **options)


def _settings_key(ids_digest: str, chunk_size: int, options: dict[str, Any]) -> str:
    settings = {k: v for k, v in options.items() if k not in ("keep_chunks", "use_gpu")}
    return fingerprint({"ids": ids_digest, "chunk_size": chunk_size, **settings})


def _finished(out_dir: Path, key: str, student_hash: str | None) -> DenseIndex | None:
    """The index already in ``out_dir`` when it was built with settings ``key``, else None."""
    try:
        if read_manifest(out_dir).get("settings_fingerprint") != key:
            return None
        return DenseIndex.load(out_dir, expected_student_hash=student_hash)
    except InputError:
        return None


def _build(
    out_dir: Path,
    chunks: Iterable[tuple[list[str], Callable[[], Sequence[str]]]],
    total_chunks: int | None,
    encode: EncodeFn,
    key: str | None,
    *,
    index_type: str = "flat",
    metric: str = "ip",
    student_hash: str | None = None,
    keep_chunks: bool = False,
    chunk_dtype: str = "float16",
    seed: int = 0,
    use_gpu: bool | None = None,
    extra: dict[str, Any] | None = None,
    **sizing: Any,
) -> DenseIndex:
    """Encode missing chunks, train on a sample, add chunk by chunk, save, clean up."""
    if chunk_dtype not in ("float16", "float32"):
        raise RKDError(f"chunk_dtype must be float16 or float32, got {chunk_dtype!r}")
    chunk_dir = out_dir / CHUNKS_DIR
    chunk_dir.mkdir(parents=True, exist_ok=True)
    with measure() as cost:
        files, all_ids, stats = _encode_chunks(
            chunk_dir,
            chunks,
            total_chunks,
            encode,
            fingerprint({"student": student_hash, "encoder": (extra or {}).get("encoder")}),
            chunk_dtype,
        )
        if not all_ids:
            raise RKDError("the corpus is empty: nothing to index")
        dim = int(np.load(files[0], mmap_mode="r").shape[1])
        index = DenseIndex(
            dim, index_type, metric, student_hash=student_hash, use_gpu=use_gpu, seed=seed, **sizing
        )
        plan = plan_index(index_type, dim, len(all_ids), metric, **sizing)
        size = 0 if create_index(plan).is_trained else plan.train_size
        sample = _sample(files, len(all_ids), size, seed)
        index.train(sample, n_total=len(all_ids))
        del sample
        start = time.perf_counter()
        offset = 0
        for path in progress(files, desc="add", unit="chunk"):
            block = np.load(path, mmap_mode="r")
            index.add(all_ids[offset : offset + len(block)], np.asarray(block, np.float32))
            offset += len(block)
        add_s = time.perf_counter() - start
    index.build_info.update(stats)
    index.build_info.update(
        {
            "add_s": round(add_s, 3),
            "add_docs_per_s": round(len(all_ids) / max(add_s, 1e-9), 1),
            "build_s": cost["wall_s"],
            "peak_memory_mb": cost["peak_memory_mb"],
            "chunk_dtype": chunk_dtype,
        }
    )
    manifest_extra = {**(extra or {}), "settings_fingerprint": key}
    index.save(out_dir, extra=manifest_extra)
    _clean_chunks(chunk_dir, set() if not keep_chunks else {p.name for p in files})
    return index


def _encode_chunks(
    chunk_dir: Path,
    chunks: Iterable[tuple[list[str], Callable[[], Sequence[str]]]],
    total_chunks: int | None,
    encode: EncodeFn,
    vectors_key: str,
    chunk_dtype: str,
) -> tuple[list[Path], list[str], dict[str, Any]]:
    """Encode every chunk that has no valid file yet; returns (files, all ids, timings).

    ``vectors_key`` names what made the vectors (the student's weights and its encoder
    settings); a chunk file is reused only under the same key."""
    files: list[Path] = []
    all_ids: list[str] = []
    dim: int | None = None
    encoded = reused = docs = 0
    encode_s = 0.0
    for number, (ids, texts_of) in enumerate(
        progress(chunks, desc="encode", total=total_chunks, unit="chunk")
    ):
        if not ids:
            continue
        key = fingerprint({"ids": _ids_digest(ids), "vectors": vectors_key, "dtype": chunk_dtype})
        path = chunk_dir / f"chunk_{number:06d}_{key}.npy"
        if _valid_chunk(path, len(ids), dim):
            reused += 1
        else:
            texts = list(texts_of())
            if len(texts) != len(ids):
                raise RKDError(f"chunk {number}: {len(texts)} texts for {len(ids)} ids")
            start = time.perf_counter()
            vectors = as_matrix(encode(texts), dim, f"encoded chunk {number}")
            encode_s += time.perf_counter() - start
            if len(vectors) != len(ids):
                raise RKDError(
                    f"chunk {number}: encode returned {len(vectors)} rows for {len(ids)}"
                )
            _write_chunk(path, vectors.astype(chunk_dtype), number)
            encoded += 1
            docs += len(ids)
        dim = dim or int(np.load(path, mmap_mode="r").shape[1])
        files.append(path)
        all_ids.extend(ids)
    stats = {
        "chunks": len(files),
        "chunks_encoded": encoded,
        "chunks_reused": reused,
        "encoded_docs": docs,
        "encode_s": round(encode_s, 3),
        "encode_docs_per_s": round(docs / encode_s, 1) if encode_s > 0 else None,
    }
    return files, all_ids, stats


def _valid_chunk(path: Path, rows: int, dim: int | None) -> bool:
    """Whether ``path`` is a complete chunk file of ``rows`` vectors (of ``dim`` when known)."""
    if not path.is_file():
        return False
    try:
        shape = np.load(path, mmap_mode="r").shape
    except (ValueError, OSError, EOFError):
        return False
    return len(shape) == 2 and shape[0] == rows and (dim is None or shape[1] == dim)


def _write_chunk(path: Path, vectors: np.ndarray, number: int) -> None:
    """Write a chunk file atomically (temporary file, fsync, ``os.replace``)."""
    if not np.isfinite(vectors).all():
        raise RKDError(f"chunk {number} overflows float16; use chunk_dtype='float32'")
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        np.save(handle, vectors)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _sample(files: list[Path], total: int, size: int, seed: int) -> np.ndarray:
    """A seeded random sample of ``size`` rows across the chunk files, as float32.

    Shapes:
        returns: [size, D] (size is clamped to ``total``).
    """
    size = min(size, total)
    rng = np.random.default_rng(seed)
    picks = np.sort(rng.choice(total, size, replace=False)) if size < total else np.arange(total)
    parts, offset = [], 0
    for path in files:
        block = np.load(path, mmap_mode="r")
        local = picks[(picks >= offset) & (picks < offset + len(block))] - offset
        if len(local):
            parts.append(np.asarray(block[local], dtype=np.float32))
        offset += len(block)
    dim = np.load(files[0], mmap_mode="r").shape[1]
    return np.concatenate(parts) if parts else np.empty((0, dim), np.float32)


def _clean_chunks(chunk_dir: Path, keep: set[str]) -> None:
    """Delete chunk files not in ``keep`` (stale or all), and the folder when it is empty."""
    for path in chunk_dir.glob("*chunk_*.npy*"):
        if path.name not in keep:
            path.unlink(missing_ok=True)
    if not any(chunk_dir.iterdir()):
        chunk_dir.rmdir()
