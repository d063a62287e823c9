"""Filters on generated (query, source document) pairs: round-trip consistency, a teacher floor.

A generated query is only as good as its claim to be answered by its source. Round-trip
consistency (Alberti et al. 2019, "Synthetic QA Corpora Generation with Roundtrip Consistency";
InPars and Tamber et al. 2025 filter the same way) keeps a query only if its source document
comes back in the top k when the query is run: by the teacher (the source's rank among the
query's scored candidates) or by the candidate retriever (its rank in the candidate run). A
teacher-score floor keeps a query only if the teacher scores its source at least so high (a
GPL-style reranker threshold, in the teacher's own units).

:func:`filter_query_set` writes a query set with two splits: ``train`` (every filter) and
``teacher-free`` (only the filters that do not use the teacher), so that a baseline trained
without the teacher is not handed the teacher's judgement through the choice of its queries.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retrieval_kd.data import read_queries
from retrieval_kd.data.runs import ranked_doc_ids
from retrieval_kd.data.types import Run
from retrieval_kd.errors import InputError
from retrieval_kd.generation.query_set import read_sources, write_query_set
from retrieval_kd.manifest import read_manifest

TEACHER_FREE_SPLIT = "teacher-free"


def source_rank(doc_ids: list[str], source: str) -> int | None:
    """1-based rank of ``source`` in ``doc_ids`` (already in ranked order), or None."""
    try:
        return doc_ids.index(source) + 1
    except ValueError:
        return None


def filter_query_set(
    query_set: str | Path,
    out_dir: str | Path,
    store: Any,
    candidates: Run,
    *,
    round_trip: str = "teacher",
    round_trip_k: int | None = None,
    teacher_floor: float | None = None,
) -> dict[str, Any]:
    """Filter a generated query set by its teacher scores and candidates (module docstring).

    Args:
        query_set: the generated query-set folder.
        out_dir: where the filtered set goes.
        store: the teacher's ``ScoreStore`` of the queries' candidates, sources included.
        candidates: the candidate run (for ``round_trip="candidates"``).
        round_trip: ``"teacher"`` or ``"candidates"``.
        round_trip_k: keep a query whose source ranks in the top k (None: no round trip).
        teacher_floor: keep a query whose source's teacher score is at least this (None: off).

    Returns:
        The manifest: counts in, dropped by each filter, kept (``train`` and ``teacher-free``),
        and the distribution of the source's teacher rank.

    Raises:
        InputError: a bad setting, or no query left in ``train``.
    """
    if round_trip not in ("teacher", "candidates"):
        raise InputError(f"round_trip must be 'teacher' or 'candidates', got {round_trip!r}")
    if round_trip_k is not None and round_trip_k < 1:
        raise InputError(f"round_trip_k must be None or >= 1, got {round_trip_k}")
    query_set = Path(query_set)
    sources = read_sources(query_set)
    texts = read_queries(query_set / "queries.jsonl")
    generated = read_manifest(query_set)
    dropped = {"round_trip": 0, "teacher_floor": 0}
    train: list[str] = []
    teacher_free: list[str] = []
    teacher_ranks: dict[str, int] = {}
    for qid, doc_id in sources.items():
        row = store.get(qid) if qid in store else None
        rank = source_rank(list(row.doc_ids), doc_id) if row is not None else None
        if rank is not None:
            teacher_ranks[qid] = rank
        keep_free = keep = True
        if round_trip_k is not None:
            if round_trip == "candidates":
                ranked = ranked_doc_ids(candidates.get(qid, {}))
                found = source_rank(ranked, doc_id)
                keep_free = keep = found is not None and found <= round_trip_k
            else:
                keep = rank is not None and rank <= round_trip_k
        if not keep:
            dropped["round_trip"] += 1
        if keep and teacher_floor is not None:
            score = float(row.scores[rank - 1]) if rank is not None else float("-inf")
            if score < teacher_floor:
                keep = False
                dropped["teacher_floor"] += 1
        if keep_free:
            teacher_free.append(qid)
        if keep:
            train.append(qid)
    if not train:
        raise InputError(
            f"zero generated queries left after filtering ({len(sources)} in, round trip dropped "
            f"{dropped['round_trip']}, teacher floor dropped {dropped['teacher_floor']}); loosen "
            "filters.round_trip_k or filters.teacher_floor",
            query_set,
        )
    ranks = list(teacher_ranks.values())
    manifest = {
        "stage": "filter-queries",
        "query_set": str(query_set),
        "settings": {
            "round_trip": round_trip,
            "round_trip_k": round_trip_k,
            "teacher_floor": teacher_floor,
        },
        "counts": {
            "in": len(sources),
            **{f"dropped_{k}": v for k, v in dropped.items()},
            "kept": len(train),
            f"kept_{TEACHER_FREE_SPLIT}": len(teacher_free),
        },
        "teacher_rank_of_source": {
            "first": sum(r == 1 for r in ranks),
            "top3": sum(r <= 3 for r in ranks),
            "top10": sum(r <= 10 for r in ranks),
            "scored": len(ranks),
        },
        "generated": {k: generated.get(k) for k in ("generator", "counts", "query_words")},
    }
    keep_any = set(teacher_free) | set(train)
    rows = [(q, d, texts[q]) for q, d in sources.items() if q in keep_any]
    write_query_set(
        out_dir,
        rows,
        generated["corpus"],
        manifest,
        splits={"train": train, TEACHER_FREE_SPLIT: teacher_free},
    )
    return read_manifest(out_dir)
