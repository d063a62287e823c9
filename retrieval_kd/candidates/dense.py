"""Dense candidates: a bi-encoder's top-k over a FAISS index of the whole corpus.

Hard negatives mined by a dense retriever are the ones a dense student gets wrong (ANCE, Xiong
et al. 2021; TAS-B, Hofstätter et al. 2021; RocketQA, Qu et al. 2021), unlike BM25's lexical
near-misses. The retriever is any sentence-transformers model (hub id, short name, local folder,
or a student trained here). The corpus is encoded once per (corpus, model weights, index
settings) into ``$RKD_CACHE_DIR/dense/`` with the project's resumable index builder
(:func:`retrieval_kd.retrieval.index_corpus`: chunked, an interrupted build resumes), like the
BM25 index, so the training and evaluation candidates of one run, and later runs, share it.

sentence-transformers' ``util.mine_hard_negatives`` is not used: it returns (anchor, positive,
negatives) text tuples for a dataset of pairs, while a candidate stage needs every query's
ranked doc ids (a TREC run) to score with the teacher and to fuse with BM25.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from retrieval_kd.data.corpus import Corpus, cache_root
from retrieval_kd.data.types import Queries, Run
from retrieval_kd.errors import InputError
from retrieval_kd.manifest import fingerprint


def dense_index_folder(corpus: Corpus, encoder: Any, index_type: str) -> Path:
    """Where the cached index of ``corpus`` under an encoder (its weights and the settings that
    shape its vectors: lengths, prompts, precision) lives."""
    key = fingerprint(
        {
            "corpus": corpus.fingerprint(),
            "model": encoder.hash,
            "settings": encoder.settings,
            "index": index_type,
        }
    )
    return cache_root() / "dense" / f"{corpus.name.replace('/', '_')}-{key}"


def dense_candidates(
    retriever: Any,
    corpus: Corpus,
    queries: Queries,
    k: int = 100,
    *,
    index_type: str = "flat",
    batch_size: int = 64,
    index_dir: str | Path | None = None,
) -> tuple[Run, dict[str, Any]]:
    """Top-``k`` documents of every query under a bi-encoder; returns the run and a cost record.

    Args:
        retriever: a model spec (hub id, short name, folder) or a loaded
            :class:`~retrieval_kd.retrieval.StudentEncoder`.
        corpus: the documents (all of them are indexed).
        queries: query id -> text.
        k: candidates per query.
        index_type: FAISS index type (``flat`` = exact inner product).
        batch_size: encoding batch size.
        index_dir: where the index goes (default: the cache, shared by later calls).

    Raises:
        RKDError: the retriever cannot be resolved (before anything is encoded).
        InputError: ``k`` < 1.
    """
    from retrieval_kd.retrieval import StudentEncoder, index_corpus, search_index

    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    encoder = (
        retriever
        if isinstance(retriever, StudentEncoder)
        else StudentEncoder(str(retriever), batch_size=batch_size)
    )
    folder = Path(index_dir) if index_dir else dense_index_folder(corpus, encoder, index_type)
    start = time.perf_counter()
    index = index_corpus(encoder, corpus, folder, index_type)
    built = time.perf_counter()
    run = search_index(folder, queries, k=min(k, len(corpus)), encoder=encoder)
    done = time.perf_counter()
    return run, {
        "retriever": str(encoder.path),
        "retriever_hash": encoder.hash,
        "index": str(folder),
        "index_type": index_type,
        "vectors": index.ntotal,
        "index_s": round(built - start, 3),
        "search_s": round(done - built, 3),
        "queries_per_s": round(len(queries) / max(done - built, 1e-9), 1),
    }
