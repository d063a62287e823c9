"""The score store: teacher scores as reusable data, and the resumable loop that fills it.

- :class:`ScoreStore` reads a store folder (Parquet shards + ``manifest.json``) as one store;
  :class:`ShardWriter` writes shards atomically.
- :func:`score_candidates` scores a candidate run with a teacher into a store, resumably and
  across ranks.
- :func:`to_run`, :func:`write_trec`, :func:`to_hf_dataset` export a store.
"""

from __future__ import annotations

from retrieval_kd.store.export import to_hf_dataset, to_run, write_trec
from retrieval_kd.store.score_store import ScoredQuery, ScoreStore, ShardWriter
from retrieval_kd.store.scoring import plan_candidates, resolve_rank, score_candidates

__all__ = [
    "ScoreStore",
    "ScoredQuery",
    "ShardWriter",
    "plan_candidates",
    "resolve_rank",
    "score_candidates",
    "to_hf_dataset",
    "to_run",
    "write_trec",
]
