"""The score store: teacher scores of (query, candidate passages) in Parquet shards.

One scoring run feeds every loss and every student, so the scores live on disk as data:

- rows of ``(query_id: string, doc_ids: list<string>, scores: list<float32>,
  labels: list<int32> | null)``; texts are not stored, they are joined later by id;
- shard files ``shard-r{rank:02d}-{seq:06d}.parquet``, each written to a hidden temporary name,
  flushed to disk and atomically renamed (``os.replace``), so a reader (or a resumed run) sees a
  shard completely or not at all, and several processes (ranks) can write into one folder
  (see :mod:`retrieval_kd.store.shards`);
- ``manifest.json`` (teacher, candidate source, counts, cost), written once scoring is complete
  (see :mod:`retrieval_kd.store.store_manifest`).

Reading merges every shard into one store. Rows of the same query from several shards are merged
into one candidate list; should the same (query, doc) pair appear twice, the first one in shard
name order wins. Candidates come back in the project's order (:mod:`retrieval_kd.ranking`:
score descending, then doc id descending).

Example:
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     _ = ShardWriter(folder).write([ScoredQuery("q1", ["d1", "d2"], [0.5, 2.0])])
    ...     store = ScoreStore(folder)
    >>> store.get("q1").doc_ids, store.get("q1").scores.tolist(), store.num_pairs
    (['d2', 'd1'], [2.0, 0.5], 2)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.data.types import Qrels, Queries, Run
from retrieval_kd.errors import InputError
from retrieval_kd.manifest import MANIFEST_NAME, read_manifest
from retrieval_kd.ranking import ranked
from retrieval_kd.store.shards import SHARD_RE, ScoredQuery, ShardWriter, read_shard

__all__ = ["ScoreStore", "ScoredQuery", "ShardWriter"]


class ScoreStore:
    """Read view of a score-store folder: every shard, merged, as one store.

    The view is a snapshot taken when it is built (or at :meth:`reload`); shards written later by
    other processes appear after ``reload()``.

    Args:
        folder: the store folder. A missing folder is an ``InputError``; an empty one is an empty
            store.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError("not a score store: no such folder", self.folder)
        self.reload()

    def reload(self) -> ScoreStore:
        """Re-read the folder's shards (e.g. after another process wrote new ones)."""
        self.shard_paths = sorted(p for p in self.folder.iterdir() if SHARD_RE.match(p.name))
        self._shards = [read_shard(p) for p in self.shard_paths]
        self._index: dict[str, list[tuple[int, int]]] = {}
        for s, shard in enumerate(self._shards):
            for row, qid in enumerate(shard.query_ids):
                self._index.setdefault(qid, []).append((s, row))
        self._num_pairs: int | None = None
        return self

    @property
    def manifest(self) -> dict[str, Any] | None:
        """``manifest.json`` of a completed scoring run, or None while unfinished."""
        if not (self.folder / MANIFEST_NAME).is_file():
            return None
        return read_manifest(self.folder)

    def query_ids(self) -> list[str]:
        """Every query id in the store, sorted (the store's stable iteration order)."""
        return sorted(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, query_id: object) -> bool:
        return query_id in self._index

    def __iter__(self) -> Iterator[ScoredQuery]:
        """Yield every query's merged :class:`ScoredQuery`, by sorted query id."""
        for qid in self.query_ids():
            yield self.get(qid)

    @property
    def num_pairs(self) -> int:
        """Number of distinct (query, doc) pairs in the store."""
        if self._num_pairs is None:
            total = 0
            for qid, rows in self._index.items():
                if len(rows) == 1:
                    s, row = rows[0]
                    offsets = self._shards[s].offsets
                    total += int(offsets[row + 1] - offsets[row])
                else:
                    total += len(self.get(qid).doc_ids)
            self._num_pairs = total
        return self._num_pairs

    def get(self, query_id: str) -> ScoredQuery:
        """One query's candidates, merged over shards, by score descending then doc id descending.

        Returns:
            ``ScoredQuery(query_id, doc_ids, scores float32 [K], labels int32 [K] | None)``;
            labels is None unless every contributing row has labels.

        Raises:
            KeyError: the query is not in the store.
        """
        rows = self._index[query_id]
        merged: dict[str, tuple[float, int | None]] = {}
        for s, row in rows:
            shard = self._shards[s]
            start, end = int(shard.offsets[row]), int(shard.offsets[row + 1])
            docs = shard.doc_ids.slice(start, end - start).to_pylist()
            sstart = int(shard.score_offsets[row])
            scores = shard.scores[sstart : sstart + len(docs)]
            labels: Any = [None] * len(docs)
            if shard.has_labels[row]:
                lstart = int(shard.label_offsets[row])  # type: ignore[index]
                labels = shard.labels[lstart : lstart + len(docs)]  # type: ignore[index]
            for doc, score, label in zip(docs, scores, labels, strict=True):
                merged.setdefault(doc, (score, None if label is None else int(label)))
        order = ranked({d: float(v[0]) for d, v in merged.items()})
        scores_out = np.array([merged[d][0] for d in order], dtype=np.float32)
        labels_list = [merged[d][1] for d in order]
        labels_out = (
            None if any(v is None for v in labels_list) else np.array(labels_list, dtype=np.int32)
        )
        return ScoredQuery(query_id, order, scores_out, labels_out)

    def to_run(self) -> Run:
        """The store as a ``Run`` (query id -> {doc id: score}); see :mod:`.export`."""
        from retrieval_kd.store.export import to_run

        return to_run(self)

    def write_trec(self, path: str | Path, run_name: str = "rkd-teacher") -> Path:
        """Write the store as a TREC run file; see :func:`retrieval_kd.store.export.write_trec`."""
        from retrieval_kd.store.export import write_trec

        return write_trec(self, path, run_name=run_name)

    def to_hf_dataset(
        self,
        queries: Queries,
        passage_text: Any,
        qrels: Qrels | None = None,
        format: str = "kl",
        num_negatives: int = 7,
        **kwargs: Any,
    ) -> Any:
        """Training rows for sentence-transformers; see :func:`.export.to_hf_dataset`."""
        from retrieval_kd.store.export import to_hf_dataset

        return to_hf_dataset(
            self, queries, passage_text, qrels=qrels, format=format,
            num_negatives=num_negatives, **kwargs,
        )  # fmt: skip
