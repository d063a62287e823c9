"""Score-store shards: the Parquet schema, atomic shard writing, checked shard reading.

A shard holds rows ``(query_id: string, doc_ids: list<string>, scores: list<float32>,
labels: list<int32> | null)``; it is named ``shard-r{rank:02d}-{seq:06d}.parquet`` by its writer's
rank and sequence number, written to a hidden ``.NAME.tmp`` file, flushed to disk and renamed
atomically (``os.replace``): a reader sees a shard completely or not at all.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from retrieval_kd.errors import InputError

SHARD_RE = re.compile(r"^shard-r(\d+)-(\d+)\.parquet$")
SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_ids", pa.list_(pa.string())),
        ("scores", pa.list_(pa.float32())),
        ("labels", pa.list_(pa.int32())),
    ]
)


class ScoredQuery(NamedTuple):
    """One query's scored candidates.

    Shapes:
        doc_ids: K ids; scores: float32 [K]; labels: int32 [K] (qrels grade, 0 = unjudged) or None.
    """

    query_id: str
    doc_ids: list[str]
    scores: np.ndarray | Sequence[float]
    labels: np.ndarray | Sequence[int] | None = None


def shard_name(rank: int, seq: int) -> str:
    """File name of shard ``seq`` of writer ``rank``: ``shard-r00-000017.parquet``."""
    return f"shard-r{rank:02d}-{seq:06d}.parquet"


class ShardWriter:
    """Writes shards of one writer rank into a store folder, each atomically.

    The sequence number continues after the highest one of this rank already in the folder, so a
    resumed run never overwrites a shard. Two live writers must not share a rank.

    Args:
        folder: the store folder (created if missing).
        rank: the writer's rank, part of every shard name.
    """

    def __init__(self, folder: str | Path, rank: int = 0):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.rank = rank
        seqs = [
            int(m.group(2))
            for p in self.folder.iterdir()
            if (m := SHARD_RE.match(p.name)) and int(m.group(1)) == rank
        ]
        self.next_seq = max(seqs, default=-1) + 1
        # Leftovers of a writer of this rank that was killed while writing.
        for stale in self.folder.glob(f".shard-r{rank:02d}-*.tmp"):
            stale.unlink(missing_ok=True)

    def write(self, rows: Sequence[ScoredQuery]) -> Path:
        """Write ``rows`` as the next shard; return its path. Nothing appears on failure."""
        path = write_parquet_atomic(
            rows_to_table(rows), self.folder / shard_name(self.rank, self.next_seq)
        )
        self.next_seq += 1
        return path


def write_parquet_atomic(table: pa.Table, path: Path) -> Path:
    """Write ``table`` to ``path`` through ``.{name}.tmp``, fsync and rename: readers (and a
    resumed run) see the whole file or none of it; nothing is left behind on failure."""
    tmp = path.parent / f".{path.name}.tmp"
    try:
        with open(tmp, "wb") as handle:
            pq.write_table(table, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def rows_to_table(rows: Sequence[ScoredQuery]) -> pa.Table:
    """Arrow table of ``rows`` in the store's schema (checks that lengths agree)."""
    for row in rows:
        if len(row.scores) != len(row.doc_ids) or (
            row.labels is not None and len(row.labels) != len(row.doc_ids)
        ):
            raise ValueError(f"query {row.query_id!r}: doc_ids, scores and labels differ in length")
    return pa.table(
        {
            "query_id": [r.query_id for r in rows],
            "doc_ids": [list(r.doc_ids) for r in rows],
            "scores": [np.asarray(r.scores, dtype=np.float32) for r in rows],
            "labels": [
                None if r.labels is None else np.asarray(r.labels, dtype=np.int32) for r in rows
            ],
        },
        schema=SCHEMA,
    )


def _fsync_dir(folder: Path) -> None:
    """Make a rename durable (best effort: not every platform can open a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class Shard:
    """One shard read into memory: flat columns plus per-row offsets."""

    path: Path
    query_ids: list[str]
    offsets: np.ndarray  # [rows + 1], into doc_ids
    score_offsets: np.ndarray  # [rows + 1], into scores
    doc_ids: pa.Array  # flat strings
    scores: np.ndarray  # flat float32
    labels: np.ndarray | None  # flat int32 (only where the row has labels)
    label_offsets: np.ndarray | None
    has_labels: np.ndarray  # [rows] bool


def read_shard(path: Path) -> Shard:
    """Read and check one shard; a corrupt or truncated file is an ``InputError``."""
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as err:
        raise InputError(f"corrupt or truncated score-store shard ({err})", path) from None
    missing = {"query_id", "doc_ids", "scores"} - set(table.column_names)
    if missing:
        raise InputError(f"score-store shard lacks column(s) {sorted(missing)}", path)
    try:
        table = table.combine_chunks()
        qids = table.column("query_id").chunk(0) if table.num_rows else pa.array([], pa.string())
        docs = _single_chunk(table, "doc_ids", pa.list_(pa.string()))
        scores = _single_chunk(table, "scores", pa.list_(pa.float32()))
        labels = None
        if "labels" in table.column_names:
            labels = _single_chunk(table, "labels", pa.list_(pa.int32()))
    except (pa.ArrowException, TypeError, ValueError) as err:
        raise InputError(f"score-store shard has unexpected column types ({err})", path) from None
    if qids.null_count or docs.null_count or scores.null_count:
        raise InputError("score-store shard has null query ids, doc ids or scores", path)
    offsets = docs.offsets.to_numpy()
    score_offsets = scores.offsets.to_numpy()
    if not np.array_equal(np.diff(offsets), np.diff(score_offsets)):
        raise InputError(
            "score-store shard has rows whose doc_ids and scores differ in length", path
        )
    has_labels = np.zeros(len(qids), dtype=bool)
    label_values = label_offsets = None
    if labels is not None:
        has_labels = ~np.asarray(labels.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        label_offsets = labels.offsets.to_numpy()
        lengths = np.diff(label_offsets)[has_labels]
        if not np.array_equal(lengths, np.diff(offsets)[has_labels]):
            raise InputError("score-store shard has rows whose labels and doc_ids differ", path)
        label_values = labels.values.to_numpy(zero_copy_only=False)
    return Shard(
        path=path,
        query_ids=qids.to_pylist(),
        offsets=offsets,
        score_offsets=score_offsets,
        doc_ids=docs.values,
        scores=scores.values.to_numpy(zero_copy_only=False).astype(np.float32, copy=False),
        labels=label_values,
        label_offsets=label_offsets,
        has_labels=has_labels,
    )


def _single_chunk(table: pa.Table, name: str, kind: pa.DataType) -> pa.Array:
    column = table.column(name)
    array = column.chunk(0) if column.num_chunks else pa.array([], kind)
    return array if array.type == kind else array.cast(kind)
