"""One teacher call: fetch texts, score the missing pairs of a few queries, check the scores.

See :mod:`retrieval_kd.store.scoring` for the behaviour on empty passages and bad scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from retrieval_kd.data.types import Qrels, Queries
from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.interfaces import Scorer
from retrieval_kd.store.score_store import ScoreStore
from retrieval_kd.store.shards import ScoredQuery

PassageText = Callable[[list[str]], Sequence[str]]


def score_batch(
    scorer: Scorer,
    teacher: str,
    queries: Queries,
    plan: dict[str, list[str]],
    store: ScoreStore,
    chunk: list[str],
    passage_text: PassageText,
    qrels: Qrels | None,
) -> list[tuple[ScoredQuery, int, int]]:
    """Score the not-yet-stored pairs of ``chunk``'s queries in one teacher call.

    Returns:
        One (row, pairs sent to the teacher, empty passages) per query with new pairs.
    """
    todo = []
    for qid in chunk:
        stored = store.get(qid) if qid in store else None
        have = set(stored.doc_ids) if stored else set()
        docs = [d for d in plan[qid] if d not in have]
        if docs:
            todo.append((qid, docs, stored))
    if not todo:
        return []
    texts = fetch_texts(passage_text, [d for _, docs, _ in todo for d in docs])
    kept: list[list[int]] = []
    query_texts, passage_lists, query_ids, doc_id_lists = [], [], [], []
    pos = 0
    for qid, docs, _ in todo:
        own = texts[pos : pos + len(docs)]
        pos += len(docs)
        keep = [i for i, text in enumerate(own) if text and text.strip()]
        kept.append(keep)
        if keep:
            query_texts.append(queries[qid])
            passage_lists.append([own[i] for i in keep])
            query_ids.append(qid)
            doc_id_lists.append([docs[i] for i in keep])
    outputs = (
        list(scorer.score(query_texts, passage_lists, query_ids=query_ids, doc_ids=doc_id_lists))
        if query_texts
        else []
    )
    if len(outputs) != len(query_texts):
        raise RKDError(
            f"teacher {teacher} returned {len(outputs)} score arrays for {len(query_texts)} "
            f"queries (first query {todo[0][0]!r}); nothing of this batch was stored"
        )
    rows = []
    call = 0
    for (qid, docs, stored), keep in zip(todo, kept, strict=True):
        scores = np.zeros(len(docs), dtype=np.float32)
        if keep:
            scores[keep] = checked_scores(outputs[call], [docs[i] for i in keep], qid, teacher)
            call += 1
        empty = len(docs) - len(keep)
        if empty:
            known = np.concatenate([scores[keep], stored.scores if stored else scores[:0]])
            floor = np.nextafter(known.min(), np.float32(-np.inf)) if known.size else 0.0
            scores[sorted(set(range(len(docs))) - set(keep))] = floor
        labels = None
        if qrels is not None:
            judged = qrels.get(qid, {})
            labels = np.array([judged.get(d, 0) for d in docs], dtype=np.int32)
        rows.append((ScoredQuery(qid, docs, scores, labels), len(keep), empty))
    return rows


def fetch_texts(passage_text: PassageText, doc_ids: list[str]) -> list[str]:
    try:
        texts = list(passage_text(doc_ids))
    except KeyError as err:
        key = err.args[0] if err.args else "?"
        raise InputError(f"doc id {key!r} of the candidates has no passage text") from None
    if len(texts) != len(doc_ids):
        raise RKDError(f"passage_text returned {len(texts)} texts for {len(doc_ids)} doc ids")
    return texts


def checked_scores(output: Any, docs: list[str], qid: str, teacher: str) -> np.ndarray:
    """One query's scores as float32 [K]; wrong count or non-finite values are an RKDError."""
    if hasattr(output, "detach"):  # a torch tensor
        output = output.detach().float().cpu().numpy()
    values = np.asarray(output, dtype=np.float64).reshape(-1)
    if values.size != len(docs):
        raise RKDError(
            f"teacher {teacher} returned {values.size} scores for query {qid!r}, which has "
            f"{len(docs)} passages; nothing of this batch was stored"
        )
    with np.errstate(over="ignore"):
        scores = values.astype(np.float32)
    bad = np.flatnonzero(~np.isfinite(scores))
    if bad.size:
        i = int(bad[0])
        raise RKDError(
            f"teacher {teacher} returned a non-finite score ({values[i]}) for query {qid!r}, "
            f"doc {docs[i]!r} ({bad.size} such scores for this query); nothing of the current "
            "shard was stored, shards written before stay and a re-run resumes after them"
        )
    return scores
