"""Preference records and their shards: the row format, the atomic shard writer, the read view.

One row per query (see :mod:`retrieval_kd.store.preferences` for the columns). Shards
``pref-r{rank:02d}-{seq:06d}.parquet`` are written to a hidden temporary file and renamed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from retrieval_kd.errors import InputError
from retrieval_kd.manifest import MANIFEST_NAME, read_manifest
from retrieval_kd.store.shards import write_parquet_atomic

TARGETS = ("pairwise", "ranking")
COST_KEYS = ("forward_passes", "tokens_in", "tokens_out", "wall_s")
REPAIR_KEYS = ("invalid_ids", "duplicate_ids", "missing_ids", "unparsed_windows")
SHARD_RE = re.compile(r"^pref-r(\d+)-(\d+)\.parquet$")
SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("status", pa.string()),
        ("doc_ids", pa.list_(pa.string())),
        ("pair_i", pa.list_(pa.int32())),
        ("pair_j", pa.list_(pa.int32())),
        ("prob", pa.list_(pa.float32())),
        *[(k, pa.float64() if k == "wall_s" else pa.int64()) for k in COST_KEYS],
        *[(k, pa.int32()) for k in REPAIR_KEYS],
    ]
)


@dataclass
class PreferenceRecord:
    """One query's teacher preferences, cost and repairs (one store row).

    Shapes:
        doc_ids: K ids; pairs: int32 [P, 2] indices into doc_ids (empty for rankings);
        probs: float32 [P], ``P(doc_ids[pairs[p, 0]] > doc_ids[pairs[p, 1]])``.
    """

    query_id: str
    doc_ids: list[str]
    pairs: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int32))
    probs: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    status: str = "ok"
    cost: dict[str, float] = field(default_factory=dict)
    repairs: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@runtime_checkable
class PreferenceTeacher(Protocol):
    """A teacher that judges one query's candidates at a time (pairwise or listwise LLM)."""

    target: str  # "pairwise" or "ranking"

    def judge(self, query: str, doc_ids: list[str], passages: list[str]) -> PreferenceRecord:
        """Preferences over ``passages`` (first-stage order); ``cost`` filled by the teacher.

        Raises:
            RKDError: the query cannot be judged (it is then stored as skipped).
        """
        ...

    def describe(self) -> dict[str, Any]: ...


def _table(records: list[PreferenceRecord]) -> pa.Table:
    pairs = [np.asarray(r.pairs, dtype=np.int32).reshape(-1, 2) for r in records]
    return pa.table(
        {
            "query_id": [r.query_id for r in records],
            "status": [r.status for r in records],
            "doc_ids": [list(r.doc_ids) for r in records],
            "pair_i": [p[:, 0] for p in pairs],
            "pair_j": [p[:, 1] for p in pairs],
            "prob": [np.asarray(r.probs, dtype=np.float32) for r in records],
            **{k: [r.cost.get(k, 0) for r in records] for k in COST_KEYS},
            **{k: [int(r.repairs.get(k, 0)) for r in records] for k in REPAIR_KEYS},
        },
        schema=SCHEMA,
    )


def write_shard(folder: Path, rank: int, records: list[PreferenceRecord]) -> Path:
    """Write ``records`` as the next shard of ``rank``, atomically (temporary file + rename)."""
    seqs = [
        int(m[2]) for p in folder.iterdir() if (m := SHARD_RE.match(p.name)) and int(m[1]) == rank
    ]
    path = folder / f"pref-r{rank:02d}-{max(seqs, default=-1) + 1:06d}.parquet"
    return write_parquet_atomic(_table(records), path)


class PreferenceStore:
    """Read view of a preference-store folder (a snapshot; :meth:`reload` re-reads it).

    The first row of a query in shard-name order wins. Iteration yields the ``ok`` records by
    sorted query id; :meth:`skipped` lists the others.
    """

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise InputError("not a preference store: no such folder", self.folder)
        self.reload()

    def reload(self) -> PreferenceStore:
        self._rows: dict[str, PreferenceRecord] = {}
        for path in sorted(p for p in self.folder.iterdir() if SHARD_RE.match(p.name)):
            try:
                table = pq.read_table(path).cast(SCHEMA)
            except (pa.ArrowException, OSError, ValueError) as err:
                raise InputError(f"corrupt preference-store shard ({err})", path) from None
            for row in table.to_pylist():
                if row["query_id"] in self._rows:
                    continue
                self._rows[row["query_id"]] = PreferenceRecord(
                    query_id=row["query_id"],
                    doc_ids=row["doc_ids"],
                    pairs=np.stack([row["pair_i"], row["pair_j"]], axis=1).astype(np.int32)
                    if row["pair_i"]
                    else np.zeros((0, 2), dtype=np.int32),
                    probs=np.asarray(row["prob"], dtype=np.float32),
                    status=row["status"],
                    cost={k: row[k] for k in COST_KEYS},
                    repairs={k: row[k] for k in REPAIR_KEYS},
                )
        return self

    @property
    def manifest(self) -> dict[str, Any] | None:
        """``manifest.json`` once every planned query is stored, else None."""
        return read_manifest(self.folder) if (self.folder / MANIFEST_NAME).is_file() else None

    def __contains__(self, query_id: object) -> bool:
        return query_id in self._rows

    def __len__(self) -> int:
        return sum(r.ok for r in self._rows.values())

    def __iter__(self) -> Iterator[PreferenceRecord]:
        return (self._rows[q] for q in sorted(self._rows) if self._rows[q].ok)

    def get(self, query_id: str) -> PreferenceRecord:
        return self._rows[query_id]

    def skipped(self) -> list[PreferenceRecord]:
        return [self._rows[q] for q in sorted(self._rows) if not self._rows[q].ok]

    def totals(self) -> dict[str, Any]:
        """Cost (summed and per judged query) and repairs over every stored row."""
        rows = list(self._rows.values())
        total = {k: sum(r.cost.get(k, 0) for r in rows) for k in COST_KEYS}
        total["wall_s"] = round(total["wall_s"], 3)
        per_query = {k: round(v / len(rows), 3) if rows else None for k, v in total.items()}
        repairs = {k: sum(r.repairs.get(k, 0) for r in rows) for k in REPAIR_KEYS}
        return {"total": total, "per_query": per_query, "repairs": repairs}
