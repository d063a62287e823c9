"""Dense retrieval with a trained student: encode a corpus into a FAISS index, search it.

A bi-encoder student is a plain sentence-transformers folder, so encoding uses
``SentenceTransformer.encode_document`` / ``encode_query`` (the folder's own prompts, pooling
and normalisation apply). The index folder records the student's path and weights hash; search
loads the same student and refuses an index built by another one.

Example:
    >>> index = index_corpus("runs/student", load_dataset("scifact").corpus,
    ...                      "runs/index-flat")  # doctest: +SKIP
    >>> run = search_index("runs/index-flat", queries, k=100)  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.data.corpus import Corpus
from retrieval_kd.data.types import Queries, Run
from retrieval_kd.errors import RKDError
from retrieval_kd.manifest import read_manifest


class StudentEncoder:
    """A sentence-transformers student's query and passage encoders as numpy functions.

    Args:
        student: a student checkpoint folder, hub id or short name.
        batch_size: texts per forward pass.
        device: torch device (None: CUDA if available); fp16 on GPU.
    """

    def __init__(self, student: str | Path, batch_size: int = 64, device: str | None = None):
        from sentence_transformers import SentenceTransformer

        from retrieval_kd.models import model_fingerprint, resolve_model

        resolved = resolve_model(str(student))
        self.path = Path(resolved.path)
        self.hash = model_fingerprint(self.path)
        self.model = SentenceTransformer(str(self.path), device=device)
        if self.model.device.type == "cuda":
            self.model.half()
        self.batch_size = batch_size
        self.dim = self.model.get_embedding_dimension()

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """Shapes: P texts -> float32 [P, D]."""
        vectors = self.model.encode_document(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        """Shapes: Q texts -> float32 [Q, D]."""
        vectors = self.model.encode_query(
            texts, batch_size=self.batch_size, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


def index_corpus(
    student: str | Path | StudentEncoder,
    corpus: Corpus,
    out_dir: str | Path,
    index_type: str = "flat",
    *,
    chunk_size: int = 10_000,
    batch_size: int = 64,
    **options: Any,
):
    """Encode ``corpus`` with ``student`` and build a FAISS index in ``out_dir`` (resumable).

    Chunks already encoded by an interrupted run are reused; an index already built with the
    same student, corpus and settings is returned as is.

    Args:
        student: checkpoint folder (or an already loaded ``StudentEncoder``).
        corpus: the documents.
        out_dir: the index folder.
        index_type: flat, ivf, ivfpq, opq-ivfpq, hnsw, sq8 or a FAISS factory string.
        chunk_size: documents per encoded chunk (memory is bounded by a chunk).
        batch_size: encoding batch size.
        **options: FAISS sizing (nlist, pq_m, hnsw_m, train_size, use_gpu, ...).

    Returns:
        The ``DenseIndex``.
    """
    from retrieval_kd.index import build_index

    encoder = (
        student
        if isinstance(student, StudentEncoder)
        else StudentEncoder(student, batch_size=batch_size)
    )
    return build_index(
        out_dir,
        corpus.ids,
        corpus.texts,
        encoder.encode_passages,
        chunk_size=chunk_size,
        index_type=index_type,
        student_hash=encoder.hash,
        extra={
            "student": str(encoder.path),
            "corpus": corpus.fingerprint(),
            "corpus_name": corpus.name,
            "documents": len(corpus),
        },
        **options,
    )


def search_index(
    index_dir: str | Path,
    queries: Queries,
    k: int = 1000,
    *,
    nprobe: int | None = None,
    ef_search: int | None = None,
    encoder: StudentEncoder | None = None,
    batch_size: int = 64,
) -> Run:
    """Search ``index_dir`` with its own student's query encoder.

    Raises:
        RKDError: the index was built by another student (weights hash differs) or with
            vectors of another dimension.
    """
    from retrieval_kd.index import DenseIndex

    manifest = read_manifest(index_dir)
    if encoder is None:
        if "student" not in manifest:
            raise RKDError(f"index {index_dir} does not name its student: pass an encoder")
        encoder = StudentEncoder(manifest["student"], batch_size=batch_size)
    index = DenseIndex.load(index_dir, expected_student_hash=encoder.hash, expected_dim=encoder.dim)
    query_ids = list(queries)
    vectors = encoder.encode_queries([queries[q] for q in query_ids])
    scores, ids = index.search(vectors, k=min(k, index.ntotal), nprobe=nprobe, ef_search=ef_search)
    return {
        q: {d: float(s) for d, s in zip(hits, row, strict=False)}
        for q, hits, row in zip(query_ids, ids, scores, strict=True)
    }
