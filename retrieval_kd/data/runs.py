"""TREC run files (``qid Q0 docid rank score tag``): reading, ordering and atomic writing."""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path

from retrieval_kd.data.textfiles import iter_tsv
from retrieval_kd.data.types import Qrels, Run
from retrieval_kd.errors import InputError
from retrieval_kd.ranking import ranked


def read_run(
    path: str | Path,
    known_queries: Collection[str] | None = None,
    known_docs: Collection[str] | None = None,
) -> Run:
    """Read a TREC run into ``{query_id: {doc_id: score}}``.

    The rank column is ignored: as in trec_eval, the score decides the order.

    Args:
        path: the run file (fields separated by any whitespace).
        known_queries: if given, a query id outside it is an error (a run for another dataset).
        known_docs: if given, a document id outside it is an error.

    Raises:
        InputError: wrong number of fields, a non-numeric or non-finite score, a document listed
            twice for one query, an unknown query or document, or an empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError("run file not found", path)
    run: Run = {}
    first_line: dict[str, int] = {}  # doc id -> its first line, checked against known_docs once
    for line_number, fields in iter_tsv(path):
        fields = fields[0].split() if len(fields) == 1 else [f.strip() for f in fields]
        if len(fields) != 6:
            raise InputError(
                f"run line has {len(fields)} fields, expected 6 (qid Q0 docid rank score tag)",
                path,
                line_number,
            )
        query_id, _, doc_id, _, score_text, _ = fields
        try:
            score = float(score_text)
        except ValueError:
            raise InputError(f"score {score_text!r} is not a number", path, line_number) from None
        if score != score or score in (float("inf"), float("-inf")):
            raise InputError(f"score {score_text!r} is not finite", path, line_number)
        if known_queries is not None and query_id not in known_queries:
            raise InputError(f"run names unknown query {query_id!r}", path, line_number)
        first_line.setdefault(doc_id, line_number)
        ranked = run.setdefault(query_id, {})
        if doc_id in ranked:
            raise InputError(
                f"document {doc_id!r} appears twice for query {query_id!r}", path, line_number
            )
        ranked[doc_id] = score
    if not run:
        raise InputError("run file holds no ranking", path)
    if known_docs is not None:
        found = _contained(first_line, known_docs)
        unknown = [d for d, ok in zip(first_line, found, strict=True) if not ok]
        if unknown:
            first = min(unknown, key=first_line.__getitem__)
            raise InputError(f"run names unknown document {first!r}", path, first_line[first])
    return run


def _contained(doc_ids: Collection[str], known: Collection[str]) -> list[bool]:
    """Whether each of ``doc_ids`` is in ``known``: one vectorised lookup for a ``Corpus``."""
    if hasattr(known, "contains"):
        return known.contains(list(doc_ids)).tolist()
    return [d in known for d in doc_ids]


def ranked_doc_ids(scores: dict[str, float], depth: int | None = None) -> list[str]:
    """Doc ids by score descending, ties broken by doc id descending (trec_eval's order: the
    project's one rule, :mod:`retrieval_kd.ranking`)."""
    return ranked(scores, depth)


def pool_doc_ids(
    candidates: Mapping[str, Iterable[str]], qrels: Qrels, known_docs: Collection[str]
) -> list[str]:
    """Sorted doc ids of every query's candidates plus its judged documents in ``known_docs``.

    A small stand-in for a whole corpus: ranking every query against this pool asks a retriever
    to keep other queries' documents out of its top k, as full-corpus search does, at the cost
    of encoding only the pool (855 of SciFact's 5,183 documents for 50 queries' BM25 top 20).
    Judged documents missing from ``known_docs`` (the corpus) are left out; the pool is sorted,
    so the same inputs give the same pool.

    Shapes:
        candidates: Q query ids -> doc ids (a run's per-query dicts work); returns N doc ids.
    """
    pool = {d for docs in candidates.values() for d in docs}
    judged = list(dict.fromkeys(d for q in candidates for d in qrels.get(q, {}) if d not in pool))
    pool.update(d for d, ok in zip(judged, _contained(judged, known_docs), strict=True) if ok)
    return sorted(pool)


def truncate_run(run: Run, depth: int) -> Run:
    """A new run keeping each query's top ``depth`` documents (in ``ranked_doc_ids`` order)."""
    return {q: {d: docs[d] for d in ranked_doc_ids(docs, depth)} for q, docs in run.items()}


def write_run(run: Run, path: str | Path, tag: str = "rkd", depth: int | None = None) -> Path:
    """Write a TREC run atomically (temp file + rename), ranks 1.. in ``ranked_doc_ids`` order.

    Scores are written at full precision (Python's shortest round-trip form of the float), so
    reading the file back gives the same scores and the same order: rounding to a few decimals
    would turn near-ties into ties, broken by doc id, and change rank correlations computed
    from the file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            for query_id in sorted(run):
                for rank, doc_id in enumerate(ranked_doc_ids(run[query_id], depth), start=1):
                    handle.write(
                        f"{query_id} Q0 {doc_id} {rank} {float(run[query_id][doc_id])!r} {tag}\n"
                    )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def run_fingerprint(run: Run) -> str:
    """Content hash of a run (order-independent), for manifests."""
    digest = hashlib.sha256()
    for query_id in sorted(run):
        for doc_id in sorted(run[query_id]):
            digest.update(f"{query_id}\t{doc_id}\t{run[query_id][doc_id]:.6g}\n".encode())
    return digest.hexdigest()[:16]
