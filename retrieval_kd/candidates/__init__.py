"""First-stage candidates: BM25 over a corpus, or any external TREC run."""

from retrieval_kd.candidates.bm25 import BM25Index, bm25_candidates

__all__ = ["BM25Index", "bm25_candidates"]
