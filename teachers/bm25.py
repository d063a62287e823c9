"""BM25 as a teacher: exact BM25 scores of any (query, document) pair of a corpus.

The ``run`` teacher reads a candidate run's own scores, which are BM25's only when the candidates
came from BM25 alone; dense or fused candidates (``retrieval_kd.candidates``) carry other scores,
and a BM25 top-k does not list the documents a dense retriever found. This teacher scores every
candidate with the corpus's BM25 index (bm25s, the same index and settings as BM25 candidates),
so a hybrid teacher ``ensemble:zscore:bm25*1+bi-encoder:<model>*1`` means the same thing
whatever the candidates are. On BM25 candidates it equals the ``run`` teacher.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from retrieval_kd.data.corpus import Corpus
from retrieval_kd.errors import RKDError


class BM25Teacher:
    """Scores candidates with BM25 by doc id (ids are required; texts are not read).

    Args:
        corpus: the collection whose BM25 index scores (built once into the cache if needed).
        settings: ``retrieval_kd.candidates.bm25.BM25Settings`` (default: bm25s' own).
    """

    def __init__(self, corpus: Corpus, settings: Any = None):
        from retrieval_kd.candidates import BM25Index
        from retrieval_kd.candidates.bm25 import BM25Settings

        self.settings = settings or BM25Settings()
        self.corpus_fingerprint = corpus.fingerprint()
        self.index = BM25Index.open(corpus, self.settings)

    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """Shapes: Q queries with K_i candidates each -> Q float64 arrays [K_i]."""
        if doc_ids is None:
            raise RKDError("the bm25 teacher scores documents by id: the caller must pass doc_ids")
        return [
            self.index.score_documents(query, list(docs)).astype(np.float64)
            for query, docs in zip(queries, doc_ids, strict=True)
        ]

    def describe(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "kind": "bm25",
            **asdict(self.settings),
            "corpus": self.corpus_fingerprint,
            "score_transform": "none",
        }
