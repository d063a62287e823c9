"""The preference store: LLM pairwise preferences and rankings as data, filled resumably.

A pairwise teacher gives ``P(i > j)`` for pairs of a query's candidates, a listwise teacher an
order of them; neither gives a score per passage. Both are kept as they come, one row per query:

- ``(query_id, status, doc_ids, pair_i, pair_j, prob)``: for ``target = "pairwise"``, ``doc_ids``
  are the candidates in first-stage order and ``prob[p] = P(doc_ids[pair_i[p]] >
  doc_ids[pair_j[p]])``; for ``target = "ranking"``, ``doc_ids`` is the teacher's order, best
  first, and the pair columns are empty;
- the query's cost (``forward_passes``, ``tokens_in``, ``tokens_out``, ``wall_s``) and the repairs
  its output needed (``invalid_ids``, ``duplicate_ids``, ``missing_ids``, ``unparsed_windows``);
- ``status`` ``"ok"``, or ``"skipped: <reason>"`` for a query the teacher could not judge (a
  prompt that cannot be built, say): skipped queries are kept, so that a resumed run does not
  retry them and the manifest counts them.

Shards ``pref-r{rank:02d}-{seq:06d}.parquet`` are written to a hidden temporary file and renamed
atomically, as in the score store; a run killed at any point and re-run judges only the queries
not yet in a shard. ``manifest.json`` (teacher, candidates, counts, repairs, cost in total and per
query) appears once every planned query is stored. :func:`preferences_to_scores` derives an
ordinary :class:`~retrieval_kd.store.ScoreStore` (Bradley-Terry or win-rate aggregate of the
pairs, or rank-derived scores of the orders) so that every score loss can use the targets.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from retrieval_kd.data.types import Qrels, Queries, Run
from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.losses.preference import bradley_terry, rank_scores, win_rate
from retrieval_kd.manifest import MANIFEST_NAME, fingerprint, read_manifest, write_manifest
from retrieval_kd.progress import progress
from retrieval_kd.store.score_store import ScoredQuery, ScoreStore, ShardWriter
from retrieval_kd.store.scoring import plan_candidates, plan_sha256, resolve_rank
from retrieval_kd.store.shards import _fsync_dir
from retrieval_kd.store.store_manifest import (
    check_same_teacher,
    read_parts,
    teacher_identity,
    write_part,
)
from retrieval_kd.store.teacher_batch import PassageText, fetch_texts

logger = logging.getLogger(__name__)

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
    tmp = folder / f".{path.name}.tmp"
    try:
        with open(tmp, "wb") as handle:
            pq.write_table(_table(records), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(folder)
    return path


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


def collect_preferences(
    teacher: PreferenceTeacher,
    queries: Queries,
    candidates: Run,
    passage_text: PassageText,
    out_dir: str | Path,
    *,
    depth: int = 10,
    queries_per_shard: int = 10,
    rank: int | None = None,
    world_size: int | None = None,
    candidate_source: dict[str, Any] | None = None,
) -> PreferenceStore:
    """Judge each query's top-``depth`` candidates with ``teacher`` into ``out_dir`` (resumable).

    Args:
        teacher: a pairwise or listwise teacher (:class:`PreferenceTeacher`).
        queries: query id -> text; must hold every query of ``candidates``.
        candidates: query id -> {doc id: first-stage score}; the top ``depth`` by score (then
            doc id) are judged, in that order.
        passage_text: doc ids -> texts.
        out_dir: the store folder (an existing one is resumed; another teacher's is refused).
        depth: candidates per query.
        queries_per_shard: queries per shard, the most a crash can lose.
        rank, world_size: this process's slice of the queries (default: as ``score_candidates``).
        candidate_source: what the candidates are, recorded in the manifest.

    Raises:
        InputError: a candidate query id missing from ``queries``; a doc id without text.
        RKDError: bad settings, another teacher's store, an unknown target.
    """
    if depth < 1 or queries_per_shard < 1:
        raise RKDError("depth and queries_per_shard must be at least 1")
    if getattr(teacher, "target", None) not in TARGETS:
        raise RKDError(f"teacher target must be one of {TARGETS}")
    missing = sorted(set(candidates) - set(queries))
    if missing:
        raise InputError(f"{len(missing)} candidate query id(s) not in the queries: {missing[:5]}")
    rank, world_size = resolve_rank(rank, world_size)
    plan = plan_candidates(candidates, depth)
    describe = dict(teacher.describe())
    settings = {
        "target": teacher.target,
        "teacher": describe,
        "candidate_source": {
            **(candidate_source or {}),
            "depth": depth,
            "queries": len(plan),
            "candidates_sha256": plan_sha256(plan),
        },
    }
    settings_fp = fingerprint({**settings, "teacher": teacher_identity(describe)})
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    check_same_teacher(folder, describe)
    if (folder / MANIFEST_NAME).is_file():
        if read_manifest(folder).get("settings_fingerprint") == settings_fp:
            return PreferenceStore(folder)
        (folder / MANIFEST_NAME).unlink()
    for stale in folder.glob(f".pref-r{rank:02d}-*.tmp"):
        stale.unlink(missing_ok=True)
    store = PreferenceStore(folder)
    session = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%S"), "queries": 0, "wall_s": 0.0}
    previous = read_parts(folder).get(rank, {}).get("sessions", [])
    part = {"rank": rank, "settings_fingerprint": settings_fp, **settings}
    part["sessions"] = [*previous, session]
    write_part(folder, rank, part)
    start = time.perf_counter()
    pending: list[PreferenceRecord] = []

    def flush() -> None:
        if pending:
            write_shard(folder, rank, pending)
            session["queries"] += len(pending)
            pending.clear()
        session["wall_s"] = round(time.perf_counter() - start, 3)
        write_part(folder, rank, part)

    todo = [q for q in sorted(plan)[rank::world_size] if q not in store]
    for qid in progress(todo, desc=f"LLM {teacher.target} (rank {rank})", unit="query"):
        pending.append(_judge(teacher, qid, queries[qid], plan[qid], passage_text))
        if len(pending) >= queries_per_shard:
            flush()
    flush()
    store.reload()
    if all(q in store._rows for q in plan):
        _write_manifest(folder, settings, settings_fp, store)
    return store


def _judge(
    teacher: PreferenceTeacher, qid: str, query: str, docs: list[str], passage_text: PassageText
) -> PreferenceRecord:
    """One query's record; an RKDError of the teacher becomes a skipped record."""
    texts = fetch_texts(passage_text, docs)
    start = time.perf_counter()
    try:
        record = teacher.judge(query, docs, texts)
        _check_record(record, docs)
    except RKDError as err:
        logger.warning("query %r skipped: %s", qid, err)
        record = PreferenceRecord(qid, [], status=f"skipped: {err}"[:500])
    wall = round(time.perf_counter() - start, 4)
    return replace(record, query_id=qid, cost={**record.cost, "wall_s": wall})


def _check_record(record: PreferenceRecord, docs: list[str]) -> None:
    if not set(record.doc_ids) <= set(docs) or len(set(record.doc_ids)) != len(record.doc_ids):
        raise RKDError("the teacher returned doc ids that are not the query's candidates")
    pairs = np.asarray(record.pairs).reshape(-1, 2)
    probs = np.asarray(record.probs, dtype=np.float64)
    if len(pairs) != len(probs) or not np.all(np.isfinite(probs) & (probs >= 0) & (probs <= 1)):
        raise RKDError("the teacher returned malformed pairwise probabilities")


def _write_manifest(folder: Path, settings: dict, settings_fp: str, store: PreferenceStore) -> None:
    records = list(store)
    totals = store.totals()
    parts = read_parts(folder)
    sessions = [s for p in parts.values() for s in p.get("sessions", [])]
    skipped = store.skipped()
    write_manifest(
        folder,
        {
            "kind": "preference_store",
            "format_version": 1,
            "settings_fingerprint": settings_fp,
            **settings,
            "counts": {
                "queries": len(records),
                "skipped": len(skipped),
                "pairs": int(sum(len(r.probs) for r in records)),
                "docs": int(sum(len(r.doc_ids) for r in records)),
                "repairs": totals["repairs"],
            },
            "skipped": [{"query_id": r.query_id, "reason": r.status} for r in skipped[:100]],
            "cost": {
                "total": totals["total"],
                "per_query": totals["per_query"],
                "sessions": len(sessions),
                "wall_s_sessions": round(sum(s.get("wall_s", 0.0) for s in sessions), 3),
            },
        },
    )


def preferences_to_scores(
    store: PreferenceStore,
    out_dir: str | Path,
    *,
    aggregate: str = "bradley_terry",
    transform: str = "neg_rank",
    k: float = 60.0,
    prior: float = 0.1,
    qrels: Qrels | None = None,
    query_ids: Collection[str] | None = None,
) -> ScoreStore:
    """Derive a ScoreStore from a complete preference store, for losses that need scores.

    Pairwise targets: the ``aggregate`` per document (``"bradley_terry"`` log-strength or
    ``"win_rate"``) over the documents that appear in at least one pair. Rankings: the
    ``transform`` of each rank (``"neg_rank"``: -rank, ``"reciprocal_rank"``: 1/(k + rank)).
    The manifest names the teacher with its ``score_transform`` and carries the LLM cost.
    ``out_dir`` must be new, empty or an earlier derivation (which is replaced). With
    ``query_ids``, only those queries are kept (e.g. a training split of the judged queries).

    Raises:
        RKDError: the preference store is unfinished, or ``out_dir`` holds another store.
    """
    source = store.manifest
    if source is None:
        raise RKDError(f"preference store {store.folder} is unfinished (no manifest.json)")
    if source["target"] == "pairwise":
        score_transform = {"aggregate": aggregate, "prior": prior}
        if aggregate not in ("bradley_terry", "win_rate"):
            raise RKDError(f"unknown aggregate {aggregate!r}")
    else:
        score_transform = {"rank_transform": transform, "k": k}
    rows = []
    keep = None if query_ids is None else set(query_ids)
    for record in store:
        if keep is not None and record.query_id not in keep:
            continue
        docs, scores = _scores(record, source["target"], aggregate, transform, k, prior)
        labels = None
        if qrels is not None:
            labels = [qrels.get(record.query_id, {}).get(d, 0) for d in docs]
        rows.append(ScoredQuery(record.query_id, docs, scores, labels))
    folder = Path(out_dir)
    kept = [(r.query_id, r.labels) for r in rows]  # the queries, and labels when given
    settings_fp = fingerprint([source["settings_fingerprint"], score_transform, kept])
    if folder.is_dir() and any(folder.iterdir()):
        previous = read_manifest(folder) if (folder / MANIFEST_NAME).is_file() else {}
        if "derived_from" not in previous:
            raise RKDError(f"{folder} is not empty and not a derived score store: refusing")
        if previous.get("settings_fingerprint") == settings_fp:
            return ScoreStore(folder)
        for path in folder.iterdir():
            if path.is_file():
                path.unlink()
    ShardWriter(folder).write(rows)
    derived = ScoreStore(folder)
    write_manifest(
        folder,
        {
            "kind": "score_store",
            "settings_fingerprint": settings_fp,
            "derived_from": {"folder": str(store.folder), "kind": "preference_store"},
            "teacher": {**source["teacher"], "score_transform": score_transform},
            "candidate_source": source["candidate_source"],
            "labels": "qrels grade, 0 = unjudged" if qrels is not None else None,
            "counts": {"queries": len(derived), "pairs": derived.num_pairs},
            "cost": source["cost"],
        },
    )
    return derived


def _scores(
    record: PreferenceRecord, target: str, aggregate: str, transform: str, k: float, prior: float
) -> tuple[list[str], np.ndarray]:
    if target == "ranking":
        return list(record.doc_ids), rank_scores(len(record.doc_ids), transform, k)
    n = len(record.doc_ids)
    if aggregate == "bradley_terry":
        values = bradley_terry(n, record.pairs, record.probs, prior=prior)
    else:
        values = win_rate(n, record.pairs, record.probs)
    seen = sorted(set(np.asarray(record.pairs).reshape(-1).tolist()))
    return [record.doc_ids[i] for i in seen], values[seen].astype(np.float32)
