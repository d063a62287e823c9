"""Chunked, resumable building of a late-interaction index (see ``late_interaction``).

1. **Encode.** Chunk ``i`` of the corpus is encoded into one token matrix per doc and written
   as ``chunks/chunk_{i:06d}_{fp}.len.npy`` (int64 tokens per doc) then
   ``chunks/chunk_{i:06d}_{fp}.npy`` (float16 ``[chunk tokens, D]``), each through a temporary
   file and an atomic ``os.replace``; the tokens file commits the chunk. ``fp`` fingerprints
   the chunk's doc ids and the student hash, so a killed build re-encodes only the chunks
   without a complete pair of files (as :mod:`retrieval_kd.index.build` does for vectors).
2. **Store.** The chunk files are streamed into ``tokens.f16`` (temporary file + rename) and
   the tokens-per-doc counts become ``offsets.npy``.
3. **Train** the token index (``factory.plan_index`` sizes nlist, PQ and the training sample
   from the *token* count; IVF-PQ by default) on a seeded sample of token rows read from the
   memmap, then **add** every row in blocks of ``BLOCK_TOKENS``: memory is bounded by a chunk,
   a block, the training sample and the index, not by the corpus.
4. **Save** the FAISS index, ids and manifest (written last, with sizes, SHA-256s, timings),
   then delete the chunk files unless ``keep_chunks``.

Token vectors are stored as float16 (about 1e-3 relative error, as dense chunk files): exact
MaxSim is exact over these stored vectors.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.index.build import _clean_chunks, _ids_digest, _write_chunk
from retrieval_kd.index.factory import IndexPlan, create_index, plan_index
from retrieval_kd.index.late_interaction import (
    BLOCK_TOKENS,
    DEFAULT_CANDIDATES_PER_TOKEN,
    FILE_ROLES,
    IDS_FILE,
    INDEX_FILE,
    KIND,
    OFFSETS_FILE,
    TOKENS_FILE,
    LateInteractionIndex,
    token_matrix,
)
from retrieval_kd.manifest import (
    MANIFEST_NAME,
    file_record,
    fingerprint,
    measure,
    read_manifest,
    write_json_atomic,
    write_manifest,
)
from retrieval_kd.progress import progress

EncodeFn = Callable[[list[str]], Sequence[Any]]
TextsFor = Callable[[Sequence[str]], Sequence[str]]
CHUNKS_DIR = "chunks"


def build_late_interaction_index(
    out_dir: str | Path,
    ids: Sequence[str],
    texts_for: TextsFor,
    encode: EncodeFn,
    *,
    chunk_size: int = 1000,
    index_type: str = "ivfpq",
    student_hash: str | None = None,
    force: bool = False,
    keep_chunks: bool = False,
    seed: int = 0,
    candidates_per_token: int = DEFAULT_CANDIDATES_PER_TOKEN,
    extra: dict[str, Any] | None = None,
    **sizing: Any,
) -> LateInteractionIndex:
    """Encode ``ids``' texts into token matrices chunk by chunk and build the index folder.

    Args:
        out_dir: the index folder (chunk files go under ``out_dir/chunks/``).
        ids: every doc id, in index order.
        texts_for: returns the texts of a chunk of ids (called only for chunks to encode).
        encode: texts -> one token matrix [n_i, D] per text (a ColBERT passage encoder).
        chunk_size: docs per chunk (one encode call and one chunk file each).
        index_type: the token index (``factory.INDEX_TYPES`` name or factory string); its
            nlist and training sample are sized from the *token* count.
        student_hash: hash of the student checkpoint (checked when searching).
        force: rebuild even when ``out_dir`` already holds this very index.
        keep_chunks: keep the chunk files after the build.
        seed: seed of the training sample.
        candidates_per_token: default token hits per query token, saved with the index.
        extra: more manifest fields (student path, corpus hash); part of the settings identity.
        **sizing: ``nlist``, ``pq_m``, ``pq_nbits``, ``train_size`` for ``factory.plan_index``.

    Returns:
        The loaded index. A folder already built with the same ids, student and settings is
        loaded as is (unless ``force``).
    """
    ids, out_dir = list(ids), Path(out_dir)
    if chunk_size < 1 or len(set(ids)) != len(ids) or not ids:
        raise RKDError("need chunk_size >= 1 and a non-empty list of distinct doc ids")
    settings = {
        "index_type": index_type,
        "student_hash": student_hash,
        "seed": seed,
        "candidates_per_token": candidates_per_token,
        "extra": extra,
        **sizing,
    }
    key = fingerprint({"ids": _ids_digest(ids), "chunk_size": chunk_size, **settings})
    if not force:
        try:
            if read_manifest(out_dir).get("settings_fingerprint") == key:
                return LateInteractionIndex.load(out_dir, expected_student_hash=student_hash)
        except InputError:
            pass
    with measure() as cost:
        files, lengths, stats = _encode_chunks(
            out_dir / CHUNKS_DIR, ids, texts_for, encode, chunk_size, student_hash
        )
        (out_dir / MANIFEST_NAME).unlink(missing_ok=True)  # no manifest = unfinished
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        dim = _write_tokens(out_dir / TOKENS_FILE, files)
        tokens = np.memmap(out_dir / TOKENS_FILE, np.float16, "r", shape=(int(offsets[-1]), dim))
        plan = plan_index(index_type, dim, len(tokens), "ip", **sizing)
        index, train_s, add_s = _train_and_add(plan, tokens, seed)
        del tokens
        tmp = out_dir / f".{INDEX_FILE}.tmp"
        faiss.write_index(index, str(tmp))
        os.replace(tmp, out_dir / INDEX_FILE)
        np.save(out_dir / f".{OFFSETS_FILE}.tmp.npy", offsets)
        os.replace(out_dir / f".{OFFSETS_FILE}.tmp.npy", out_dir / OFFSETS_FILE)
        write_json_atomic(out_dir / IDS_FILE, ids)
    names = (TOKENS_FILE, OFFSETS_FILE, IDS_FILE, INDEX_FILE)
    files_record = {
        role: file_record(out_dir / n) for role, n in zip(FILE_ROLES, names, strict=True)
    }
    write_manifest(
        out_dir,
        {
            **(extra or {}),
            "kind": KIND,
            "student_hash": student_hash,
            "dim": dim,
            "count": len(ids),
            "tokens": int(offsets[-1]),
            "index_type": index_type,
            "factory": plan.factory,
            "metric": "ip",
            "nlist": plan.nlist,
            "plan": plan.to_dict(),
            "search_defaults": {
                "nprobe": plan.nprobe,
                "candidates_per_token": candidates_per_token,
            },
            "build": {
                **stats,
                "train_s": train_s,
                "add_s": add_s,
                "build_s": cost["wall_s"],
                "peak_memory_mb": cost["peak_memory_mb"],
                "tokens_per_doc": round(float(offsets[-1]) / len(ids), 1),
            },
            "files": files_record,
            "size_on_disk_bytes": sum(r["bytes"] for r in files_record.values()),
            "settings_fingerprint": key,
        },
    )
    keep = {n for p in files for n in (p.name, p.with_suffix(".len.npy").name)}
    _clean_chunks(out_dir / CHUNKS_DIR, keep if keep_chunks else set())
    return LateInteractionIndex.load(out_dir, expected_student_hash=student_hash, verify=False)


def _encode_chunks(
    chunk_dir: Path,
    ids: list[str],
    texts_for: TextsFor,
    encode: EncodeFn,
    chunk_size: int,
    student_hash: str | None,
) -> tuple[list, np.ndarray, dict]:
    """Encode every chunk without a valid file; returns (token files, tokens per doc, stats)."""
    chunk_dir.mkdir(parents=True, exist_ok=True)
    files, lengths, dim, encoded, encode_s = [], [], None, 0, 0.0
    starts = range(0, len(ids), chunk_size)
    for number, start in enumerate(progress(starts, desc="encode", unit="chunk")):
        part = ids[start : start + chunk_size]
        key = fingerprint({"ids": _ids_digest(part), "student": student_hash, "kind": "tokens"})
        path = chunk_dir / f"chunk_{number:06d}_{key}.npy"
        len_path = path.with_suffix(".len.npy")
        counts = _valid_chunk(path, len_path, len(part), dim)
        if counts is None:
            texts = list(texts_for(part))
            begin = time.perf_counter()
            matrices = list(encode(texts))
            encode_s += time.perf_counter() - begin
            if len(matrices) != len(part):
                raise RKDError(
                    f"chunk {number}: encode returned {len(matrices)} token matrices "
                    f"for {len(part)} docs"
                )
            mats = [
                token_matrix(m, dim, f"token matrix of doc {d!r}")
                for m, d in zip(matrices, part, strict=True)
            ]
            counts = np.array([len(m) for m in mats], np.int64)
            _write_chunk(len_path, counts, number)  # lengths first: the tokens file commits
            _write_chunk(path, np.concatenate(mats).astype(np.float16), number)
            encoded += 1
        dim = dim or int(np.load(path, mmap_mode="r").shape[1])
        files.append(path)
        lengths.append(counts)
    stats = {
        "chunks": len(files),
        "chunks_encoded": encoded,
        "chunks_reused": len(files) - encoded,
        "encode_s": round(encode_s, 3),
    }
    return files, np.concatenate(lengths), stats


def _valid_chunk(path: Path, len_path: Path, docs: int, dim: int | None) -> np.ndarray | None:
    """Tokens per doc of a complete chunk (both files, consistent shapes), else None."""
    try:
        counts = np.load(len_path)
        shape = np.load(path, mmap_mode="r").shape
    except (ValueError, OSError, EOFError):
        return None
    ok = counts.shape == (docs,) and len(shape) == 2 and shape[0] == counts.sum()
    return counts if ok and (dim is None or shape[1] == dim) else None


def _write_tokens(path: Path, files: list[Path]) -> int:
    """Stream the chunk files into one raw float16 file (atomic rename); returns D."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        for file in files:
            handle.write(np.ascontiguousarray(np.load(file, mmap_mode="r")).tobytes())
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return int(np.load(files[0], mmap_mode="r").shape[1])


def _train_and_add(
    plan: IndexPlan, tokens: np.ndarray, seed: int
) -> tuple[faiss.Index, float, float]:
    """Train the token index on a seeded sample of rows, then add all rows block by block."""
    index = create_index(plan)
    start = time.perf_counter()
    if not index.is_trained:
        size = min(plan.train_size, len(tokens))
        rng = np.random.default_rng(seed)
        picks = np.sort(rng.choice(len(tokens), size, replace=False))
        try:
            index.train(np.asarray(tokens[picks], np.float32))
        except RuntimeError as err:
            reason = str(err).strip().splitlines()[-1]
            raise RKDError(f"training {plan.factory} on {size} tokens failed: {reason}") from None
    train_s = round(time.perf_counter() - start, 3)
    start = time.perf_counter()
    blocks = range(0, len(tokens), BLOCK_TOKENS)
    for lo in progress(blocks, desc="add tokens", unit="block"):
        index.add(np.asarray(tokens[lo : lo + BLOCK_TOKENS], np.float32))
    return index, train_s, round(time.perf_counter() - start, 3)
