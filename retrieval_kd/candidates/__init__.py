"""First-stage candidates: BM25, a dense bi-encoder over FAISS, external TREC runs, and fusion."""

from retrieval_kd.candidates.bm25 import BM25Index, bm25_candidates
from retrieval_kd.candidates.dense import dense_candidates
from retrieval_kd.candidates.fusion import FUSIONS, fuse_runs
from retrieval_kd.candidates.sources import (
    CandidateSource,
    parse_sources,
    retrieve_candidates,
)

__all__ = [
    "FUSIONS",
    "BM25Index",
    "CandidateSource",
    "bm25_candidates",
    "dense_candidates",
    "fuse_runs",
    "parse_sources",
    "retrieve_candidates",
]
