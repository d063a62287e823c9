"""The resumable loop that fills a preference store from a pairwise or listwise LLM teacher."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.data.types import Queries, Run
from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.manifest import MANIFEST_NAME, fingerprint, read_manifest, write_manifest
from retrieval_kd.progress import progress
from retrieval_kd.store.preferences.records import (
    TARGETS,
    PreferenceRecord,
    PreferenceStore,
    PreferenceTeacher,
    write_shard,
)
from retrieval_kd.store.scoring import plan_candidates, plan_sha256, resolve_rank
from retrieval_kd.store.store_manifest import (
    check_same_teacher,
    read_parts,
    teacher_identity,
    write_part,
)
from retrieval_kd.store.teacher_batch import PassageText, fetch_texts

logger = logging.getLogger(__name__)


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
