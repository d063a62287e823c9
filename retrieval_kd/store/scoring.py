"""The resumable, distributable teacher-scoring loop that fills a score store.

``score_candidates`` takes each query's top-``depth`` candidates (by candidate score descending,
then doc id descending), asks the teacher for the pairs not yet in the store, and writes a shard
every ``queries_per_shard`` queries.

Resume:
    A run killed at any point (even ``kill -9``) and re-run with the same arguments scores only
    the pairs missing from the store: every shard is complete or absent (atomic rename), a query's
    new pairs are always scored in one teacher call and stored in one shard, and before scoring a
    query the loop drops the pairs already stored. Pairs scored but not yet in a shard when the
    process died are lost and scored again; ``queries_per_shard`` bounds that loss. Re-running
    with a larger ``depth`` scores only the new, deeper pairs. A store never mixes teachers: a run
    whose scorer ``describe()`` differs (ignoring ``device``, ``batch_size``...) is refused.

Distributed:
    ``rank`` / ``world_size`` default to ``torch.distributed`` when it is initialised, else to the
    ``RANK`` (or ``LOCAL_RANK``) and ``WORLD_SIZE`` environment variables that ``torchrun`` and
    ``accelerate launch`` set. Rank ``r`` scores the queries at positions ``i % world_size == r``
    of the sorted query ids and writes its own shards ``shard-rNN-*.parquet`` and manifest part;
    ``manifest.json`` appears when every rank is done (see :mod:`.store_manifest`). The world size
    may change between a killed run and its resumption: what is stored is skipped whatever rank
    wrote it.

Empty passages:
    A candidate whose text is empty (or only whitespace) is not sent to the teacher. It is stored
    with a score just below the lowest score of that query's other candidates (``nextafter(min,
    -inf)`` in float32), so it ranks last without becoming an outlier in a softmax or a margin; a
    query whose candidates are all empty gets 0.0 for each. They are counted in the manifest
    (``counts.empty_passages``). After a depth increase, an empty passage stored earlier keeps the
    floor of the earlier depth.

Errors (each leaves no partial shard; shards written before it stay, so a re-run resumes):
    a query id of the candidates missing from the queries (``InputError``, before any scoring);
    a doc id the ``passage_text`` function does not know (``KeyError`` -> ``InputError``);
    a scorer returning the wrong number of score arrays or scores, or a NaN / infinite score
    (``RKDError`` naming the query id and the teacher).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from retrieval_kd.data.types import Qrels, Queries, Run
from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.interfaces import Scorer
from retrieval_kd.manifest import MANIFEST_NAME, fingerprint, peak_memory_mb, read_manifest
from retrieval_kd.progress import progress
from retrieval_kd.ranking import ranked
from retrieval_kd.store.score_store import ScoredQuery, ScoreStore, ShardWriter
from retrieval_kd.store.store_manifest import (
    check_same_teacher,
    read_parts,
    teacher_identity,
    try_merge,
    write_part,
)
from retrieval_kd.store.teacher_batch import PassageText, score_batch

logger = logging.getLogger(__name__)


DEFAULT_QUERIES_PER_CALL = 16


def score_candidates(
    scorer: Scorer,
    queries: Queries,
    candidates: Run,
    passage_text: PassageText,
    out_dir: str | Path,
    *,
    depth: int = 100,
    qrels: Qrels | None = None,
    add_qrels_positives: bool = False,
    queries_per_shard: int = 1000,
    queries_per_call: int | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    candidate_source: dict[str, Any] | None = None,
) -> ScoreStore:
    """Score candidates with a teacher into the score store ``out_dir`` (resumable).

    Args:
        scorer: the teacher; ``describe()`` goes into the manifest and guards against mixing.
        queries: query id -> text; must hold every query id of ``candidates``.
        candidates: query id -> {doc id: candidate score}, e.g. a BM25 run.
        passage_text: doc ids -> texts (same length and order), e.g. a corpus lookup.
        out_dir: the store folder (created if missing; an existing store is resumed).
        depth: candidates per query, the top ones by candidate score, then doc id descending.
        qrels: when given, each pair's qrels grade (0 when unjudged) is stored as its label.
        add_qrels_positives: also score each query's relevant (grade > 0) qrels documents that
            are not among its top-``depth`` candidates (needs ``qrels``).
        queries_per_shard: queries per shard: the most work a crash can lose.
        queries_per_call: queries per ``scorer.score`` call (the teacher batches pairs inside);
            default the scorer's ``queries_per_call`` attribute if it has one (an LLM teacher
            shares a passage's forward pass among the queries of a call), else 16.
        rank: this process's rank (default: torch.distributed, else ``RANK`` / ``LOCAL_RANK``).
        world_size: number of processes (default: torch.distributed, else ``WORLD_SIZE``).
        candidate_source: what the candidates are, e.g. ``{"name": "bm25", "run_sha256": ...}``;
            recorded in the manifest with ``depth`` and a hash of the scored candidate lists.

    Returns:
        A :class:`ScoreStore` of the folder. With several ranks and no torch.distributed, other
        ranks may still be writing; ``store.manifest`` is None until all are done.

    Raises:
        InputError: a candidate query id is not in ``queries``; a doc id has no text.
        RKDError: bad settings; another teacher's store; the scorer returned a wrong number of
            scores or a non-finite score.
    """
    if queries_per_call is None:
        queries_per_call = int(
            getattr(scorer, "queries_per_call", None) or DEFAULT_QUERIES_PER_CALL
        )
    if depth < 1 or queries_per_shard < 1 or queries_per_call < 1:
        raise RKDError("depth, queries_per_shard and queries_per_call must be at least 1")
    if add_qrels_positives and qrels is None:
        raise RKDError("add_qrels_positives needs qrels")
    missing = sorted(set(candidates) - set(queries))
    if missing:
        shown = ", ".join(repr(q) for q in missing[:5])
        raise InputError(
            f"{len(missing)} query id(s) of the candidates are missing from the queries: {shown}"
            + (", ..." if len(missing) > 5 else ""),
            path=(candidate_source or {}).get("path"),
        )
    rank, world_size = resolve_rank(rank, world_size)
    plan = plan_candidates(candidates, depth, qrels if add_qrels_positives else None)
    describe = dict(scorer.describe())
    settings = {
        "teacher": describe,
        "candidate_source": {
            **(candidate_source or {}),
            "depth": depth,
            "add_qrels_positives": add_qrels_positives,
            "queries": len(plan),
            "pairs": sum(len(docs) for docs in plan.values()),
            "candidates_sha256": plan_sha256(plan),
        },
        "labels": "qrels grade, 0 = unjudged" if qrels is not None else None,
    }
    settings_fp = fingerprint({**settings, "teacher": teacher_identity(describe)})

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    check_same_teacher(folder, describe)
    if (folder / MANIFEST_NAME).is_file():
        if read_manifest(folder).get("settings_fingerprint") == settings_fp:
            logger.info("score store %s is complete for these settings: nothing to do", folder)
            return ScoreStore(folder)
        (folder / MANIFEST_NAME).unlink(missing_ok=True)  # the store is about to change

    store = ScoreStore(folder)
    writer = ShardWriter(folder, rank)
    session: dict[str, Any] = {
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "pid": os.getpid(),
        "depth": depth,
        "pairs_scored": 0,
        "pairs_stored": 0,
        "queries_scored": 0,
        "empty_passages": 0,
        "shards_written": 0,
        "wall_s": 0.0,
        "pairs_per_s": None,
        "peak_memory_mb": 0.0,
    }
    previous = read_parts(folder).get(rank, {})
    part = {
        "rank": rank,
        "world_size": world_size,
        "settings_fingerprint": settings_fp,
        **settings,
        "complete": False,
        "sessions": [*previous.get("sessions", []), session],
    }
    write_part(folder, rank, part)

    start = time.perf_counter()
    pending: list[ScoredQuery] = []
    uncommitted = {"pairs_scored": 0, "pairs_stored": 0, "queries_scored": 0, "empty_passages": 0}

    def flush() -> None:
        if pending:
            writer.write(pending)
            pending.clear()
            for key, value in uncommitted.items():
                session[key] += value
                uncommitted[key] = 0
            session["shards_written"] += 1
        session["wall_s"] = round(time.perf_counter() - start, 3)
        if session["wall_s"] > 0:
            session["pairs_per_s"] = round(session["pairs_scored"] / session["wall_s"], 2)
        session["peak_memory_mb"] = round(peak_memory_mb(), 1)
        write_part(folder, rank, part)

    mine = sorted(plan)[rank::world_size]
    chunks = [mine[i : i + queries_per_call] for i in range(0, len(mine), queries_per_call)]
    teacher = teacher_name(scorer, describe)
    for chunk in progress(chunks, desc=f"scoring (rank {rank})", total=len(chunks), unit="batch"):
        for row, sent, empty in score_batch(
            scorer, teacher, queries, plan, store, chunk, passage_text, qrels
        ):
            pending.append(row)
            uncommitted["pairs_scored"] += sent
            uncommitted["pairs_stored"] += len(row.doc_ids)
            uncommitted["queries_scored"] += 1
            uncommitted["empty_passages"] += empty
            if len(pending) >= queries_per_shard:
                flush()
    flush()
    part["complete"] = True
    write_part(folder, rank, part)
    _finish(folder, rank, world_size, settings_fp, store)
    return store.reload()


def resolve_rank(rank: int | None = None, world_size: int | None = None) -> tuple[int, int]:
    """This process's (rank, world size): explicit values, else torch.distributed, else env.

    The environment is the one ``torchrun`` / ``accelerate launch`` set: ``RANK`` (or
    ``LOCAL_RANK`` on a single node) and ``WORLD_SIZE``; absent, a single process (0, 1).
    """
    dist = _initialised_dist()
    if dist is not None:
        found_rank, found_world = dist.get_rank(), dist.get_world_size()
    else:
        found_world = int(os.environ.get("WORLD_SIZE", "1"))
        found_rank = int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")))
    rank = found_rank if rank is None else rank
    world_size = found_world if world_size is None else world_size
    if world_size < 1 or not 0 <= rank < world_size:
        raise RKDError(f"rank {rank} is not in 0..{world_size - 1} (world size {world_size})")
    return rank, world_size


def plan_candidates(
    candidates: Run, depth: int, qrels: Qrels | None = None
) -> dict[str, list[str]]:
    """Each query's doc ids to score: the top ``depth`` in the project's order
    (:mod:`retrieval_kd.ranking`: score descending, then doc id descending).

    With ``qrels``, each query's relevant (grade > 0) documents outside the top are appended,
    sorted by doc id. Queries without candidates are left out.
    """
    plan = {}
    for qid, scored in candidates.items():
        top = ranked(scored, depth)
        if qrels is not None:
            seen = set(top)
            top += sorted(d for d, g in qrels.get(qid, {}).items() if g > 0 and d not in seen)
        if top:
            plan[qid] = top
    return plan


def plan_sha256(plan: dict[str, list[str]]) -> str:
    """SHA-256 of the candidate lists to score (query ids sorted, doc order kept)."""
    digest = hashlib.sha256()
    for qid in sorted(plan):
        digest.update(("\x1e".join([qid, *plan[qid]]) + "\n").encode("utf-8"))
    return digest.hexdigest()


def teacher_name(scorer: Scorer, describe: dict[str, Any]) -> str:
    """A short name of the teacher for messages: model id, name, or class name."""
    for key in ("model_id", "model", "name"):
        if describe.get(key):
            return str(describe[key])
    return type(scorer).__name__


def _initialised_dist() -> Any:
    """``torch.distributed`` when imported and initialised, else None (torch never imported)."""
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        return dist
    return None


def _finish(folder: Path, rank: int, world_size: int, settings_fp: str, store: ScoreStore) -> None:
    """Write ``manifest.json`` once all ranks are done (barrier, or last rank to finish)."""
    dist = _initialised_dist()
    if dist is not None:
        dist.barrier()
        merged = rank != 0 or try_merge(folder, world_size, settings_fp, store)
        dist.barrier()
        if not merged:
            raise RKDError(f"score store {folder}: ranks finished with different settings")
    else:
        try_merge(folder, world_size, settings_fp, store)
