"""Exports of a score store: a ``Run``, a TREC run file, a sentence-transformers dataset.

``to_hf_dataset`` builds the exact columns that sentence-transformers' distillation losses read
(``sentence_transformer/losses/distill_kl_div.py`` and ``margin_mse.py``): text columns
``query, positive, negative_1 .. negative_n`` in that order (the collator tokenises every column
except the label, by position), then ``label``:

- ``format="kl"`` (``DistillKLDivLoss``): ``label = [T(q, pos), T(q, neg_1), ..., T(q, neg_n)]``;
- ``format="margin_mse"`` (``MarginMSELoss``): ``label = [T(q, pos) - T(q, neg_i) for i in 1..n]``
  (a list even for n = 1; MarginMSELoss accepts shape ``(batch, n)``).

No id column is kept: the collator would tokenise it as text.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from retrieval_kd.data.types import Qrels, Queries, Run
from retrieval_kd.errors import RKDError

if TYPE_CHECKING:
    import datasets

    from retrieval_kd.store.score_store import ScoreStore

logger = logging.getLogger(__name__)

FORMATS = ("kl", "margin_mse")


def to_run(store: ScoreStore) -> Run:
    """The store as a ``Run``: query id -> {doc id: teacher score}."""
    return {row.query_id: dict(zip(row.doc_ids, row.scores.tolist(), strict=True)) for row in store}


def write_trec(store: ScoreStore, path: str | Path, run_name: str = "rkd-teacher") -> Path:
    """Write the store as a TREC run (``qid Q0 docid rank score name``), atomically.

    Ranks follow the store's order (score descending, then doc id descending); scores are
    written with 9 significant digits, enough to read back every float32 exactly.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as handle:
            for row in store:
                for rank, (doc, score) in enumerate(zip(row.doc_ids, row.scores, strict=True)):
                    handle.write(f"{row.query_id} Q0 {doc} {rank + 1} {score:.9g} {run_name}\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def to_hf_dataset(
    store: ScoreStore,
    queries: Queries,
    passage_text: Callable[[list[str]], Sequence[str]],
    qrels: Qrels | None = None,
    format: str = "kl",
    num_negatives: int = 7,
    *,
    negatives: str = "top",
    min_relevance: int = 1,
    seed: int = 0,
    queries_per_text_call: int = 1024,
) -> datasets.Dataset:
    """Join the store with texts into a ``datasets.Dataset`` for a distillation loss.

    One row per query. The positive is, with ``qrels``, the stored candidate with the highest
    qrels grade (>= ``min_relevance``), ties to the higher teacher score; without ``qrels``, the
    teacher's top-1 candidate. Negatives are the other candidates (with ``qrels``: those graded
    below ``min_relevance``, unjudged included), either the ``"top"`` ``num_negatives`` by teacher
    score (hardest first) or a ``"random"`` sample (seeded per query, kept in score order).
    Queries with no positive among their candidates, or too few negatives, are skipped (counted in
    a log message): every row has the same number of columns.

    Args:
        store: the score store.
        queries: query id -> text (every query of the store that yields a row).
        passage_text: doc ids -> texts, as for scoring.
        qrels: relevance judgements, or None for the teacher's top-1 as positive.
        format: ``"kl"`` (DistillKLDivLoss) or ``"margin_mse"`` (MarginMSELoss).
        num_negatives: negatives per row (n >= 1).
        negatives: ``"top"`` or ``"random"``.
        min_relevance: lowest qrels grade that counts as relevant.
        seed: seed of ``"random"`` negatives.
        queries_per_text_call: queries whose texts are fetched per ``passage_text`` call.

    Returns:
        Columns ``query, positive, negative_1..negative_n`` (strings) and ``label`` (float32 list
        of length n + 1 for ``"kl"``, n for ``"margin_mse"``).
    """
    import datasets

    if format not in FORMATS:
        raise RKDError(f"unknown dataset format {format!r}; expected one of {FORMATS}")
    if negatives not in ("top", "random"):
        raise RKDError(f"unknown negatives {negatives!r}; expected 'top' or 'random'")
    if num_negatives < 1:
        raise RKDError("num_negatives must be at least 1 (a loss needs two candidates)")
    neg_cols = [f"negative_{i + 1}" for i in range(num_negatives)]
    columns: dict[str, list[Any]] = {c: [] for c in ["query", "positive", *neg_cols, "label"]}
    skipped = {"no_positive": 0, "too_few_negatives": 0}
    picks: list[tuple[str, list[str], list[float]]] = []

    def emit() -> None:
        texts = dict(zip(*_texts(passage_text, picks), strict=True))
        for qid, docs, scores in picks:
            columns["query"].append(queries[qid])
            columns["positive"].append(texts[docs[0]])
            for col, doc in zip(neg_cols, docs[1:], strict=True):
                columns[col].append(texts[doc])
            if format == "kl":
                columns["label"].append(scores)
            else:
                columns["label"].append([scores[0] - s for s in scores[1:]])
        picks.clear()

    for row in store:
        chosen = _choose(row, qrels, num_negatives, negatives, min_relevance, seed)
        if isinstance(chosen, str):
            skipped[chosen] += 1
            continue
        picks.append((row.query_id, [row.doc_ids[i] for i in chosen], row.scores[chosen].tolist()))
        if len(picks) >= queries_per_text_call:
            emit()
    emit()
    if any(skipped.values()):
        logger.warning("to_hf_dataset skipped queries: %s", skipped)
    features = datasets.Features(
        {
            **{c: datasets.Value("string") for c in ["query", "positive", *neg_cols]},
            "label": datasets.List(datasets.Value("float32")),
        }
    )
    return datasets.Dataset.from_dict(columns, features=features)


def _choose(
    row: Any, qrels: Qrels | None, n: int, negatives: str, min_relevance: int, seed: int
) -> list[int] | str:
    """Indices [positive, negative_1..n] into the row, or the reason to skip it."""
    if qrels is None:
        pos, pool = 0, list(range(1, len(row.doc_ids)))
    else:
        judged = qrels.get(row.query_id, {})
        grades = [judged.get(d, 0) for d in row.doc_ids]
        relevant = [i for i, g in enumerate(grades) if g >= min_relevance]
        if not relevant:
            return "no_positive"
        pos = min(relevant, key=lambda i: (-grades[i], i))  # rows are in score order
        pool = [i for i, g in enumerate(grades) if g < min_relevance]
    if len(pool) < n:
        return "too_few_negatives"
    if negatives == "random":
        pool = sorted(random.Random(f"{seed}\x00{row.query_id}").sample(pool, n))
    return [pos, *pool[:n]]


def _texts(
    passage_text: Callable[[list[str]], Sequence[str]], picks: list[tuple[str, list[str], Any]]
) -> tuple[list[str], list[str]]:
    ids = sorted({d for _, docs, _ in picks for d in docs})
    texts = list(passage_text(ids)) if ids else []
    if len(texts) != len(ids):
        raise RKDError(f"passage_text returned {len(texts)} texts for {len(ids)} doc ids")
    return ids, texts
