"""The dev set watched during training, and re-ranking its candidates with a student.

A dev set is a few judged queries, each with candidate documents to re-rank (BM25's top
``depth`` by default), scored by the student and evaluated with the evaluation package
(nDCG@10 by default). It is either a split of the collection (``evaluation.split``) or, for
collections without a dev split such as SciFact, ``evaluation.holdout_queries`` training queries
drawn with a seed and left out of training.

With ``evaluation.search: pool`` every dev query is ranked against one shared pool, the union of
all dev queries' candidates and judged documents, instead of its own candidates. Re-ranking a
query's BM25 top 20 only asks how the student orders documents BM25 already found; the pool also
asks it to keep other queries' documents out of the top 10, as full-corpus retrieval does (the
re-ranking dev curve disagreed with full-corpus test nDCG@10 on SciFact and NFCorpus). For a
vector or ColBERT student each pool document is encoded once, so the extra cost is the judged
documents that no query's candidates hold.

Re-ranking uses the student's ``encode_queries`` / ``encode_passages`` / ``similarity`` when it
has them (one vector per text, or ColBERT's token vectors; each distinct passage is encoded
once), else ``score_groups`` query by query (cross-encoders). Under
``torch.distributed`` every rank re-ranks its share of the queries and the runs are gathered.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from retrieval_kd.data import Corpus, Qrels, Queries, Run, pool_doc_ids, read_run, truncate_run
from retrieval_kd.data.runs import ranked_doc_ids
from retrieval_kd.errors import InputError
from retrieval_kd.store import ScoreStore, resolve_rank
from retrieval_kd.training.config import EvalConfig

logger = logging.getLogger(__name__)


@dataclass
class DevSet:
    """Judged queries with candidates to re-rank.

    Attributes:
        queries: query id -> text.
        qrels: judgements of those queries.
        candidates: query id -> doc ids to re-rank.
        corpus: where passage texts come from.
        metric / conventions: what :func:`evaluation.evaluate` computes.
        source: how the set was made (for the manifest).
    """

    queries: Queries
    qrels: Qrels
    candidates: dict[str, list[str]]
    corpus: Corpus
    metric: str = "ndcg@10"
    conventions: str = "beir"
    source: str = ""

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "queries": len(self.queries),
            "pairs": sum(len(d) for d in self.candidates.values()),
            "metric": self.metric,
            "conventions": self.conventions,
            "query_ids": sorted(self.queries),
        }


def holdout_ids(train_ids: list[str], qrels: Qrels, count: int, seed: int) -> list[str]:
    """``count`` judged training queries drawn with ``seed`` (sorted ids, so reproducible)."""
    judged = sorted(q for q in train_ids if any(g > 0 for g in qrels.get(q, {}).values()))
    if count >= len(judged):
        raise InputError(
            f"evaluation.holdout_queries={count} leaves no training query "
            f"({len(judged)} judged training queries)"
        )
    rng = np.random.default_rng(seed)
    return sorted(judged[i] for i in rng.choice(len(judged), size=count, replace=False))


def build_dev_set(
    config: EvalConfig,
    collection: str,
    corpus: Corpus,
    queries: Queries,
    qrels: Qrels,
    store: ScoreStore,
) -> DevSet:
    """The dev set of ``queries`` (already chosen) with candidates from ``config.candidates``.

    Args:
        config: the evaluation section.
        collection: the data spec (for the record).
        corpus / queries / qrels: the dev queries and their judgements.
        store: the score store (for ``candidates: store``).
    """
    source = f"{collection}/{config.split}" if config.split else f"{collection} held-out train"
    if config.candidates == "bm25":
        from retrieval_kd.candidates import bm25_candidates

        run, _ = bm25_candidates(corpus, queries, config.depth)
        candidates = {q: ranked_doc_ids(run.get(q, {}), config.depth) for q in queries}
    elif config.candidates == "store":
        missing = [q for q in queries if q not in store]
        if missing:
            raise InputError(f"{len(missing)} dev queries are not in the score store", store.folder)
        candidates = {q: store.get(q).doc_ids[: config.depth] for q in queries}
    else:
        run = truncate_run(
            read_run(config.candidates, known_queries=queries, known_docs=corpus), config.depth
        )
        candidates = {q: ranked_doc_ids(run.get(q, {}), config.depth) for q in queries}
    dev_qrels = {q: qrels[q] for q in queries if q in qrels}
    source = f"{source}, {config.candidates} top-{config.depth}"
    if config.search == "pool":
        pool = pool_doc_ids(candidates, dev_qrels, corpus)  # every query ranks the same pool
        candidates = {q: pool for q in candidates}
        source += f", ranked in a pool of {len(pool)} docs (candidates + judged)"
    return DevSet(
        queries=dict(queries),
        qrels=dev_qrels,
        candidates=candidates,
        corpus=corpus,
        metric=config.metric,
        conventions=config.conventions,
        source=source,
    )


def _encode(fn: Any, texts: list[str], batch_size: int) -> torch.Tensor | None:
    """Vectors of ``texts`` in batches, or None when ``fn`` does not return [n, D] tensors."""
    parts = []
    for i in range(0, len(texts), batch_size):
        part = fn(texts[i : i + batch_size])
        if not isinstance(part, torch.Tensor) or part.dim() != 2:
            return None
        parts.append(part.float())
    return torch.cat(parts)


def _rerank_vectors(student: Any, dev: DevSet, query_ids: list[str], batch_size: int) -> Run | None:
    """Re-rank with one vector per text, each passage encoded once; None if not such a model."""
    if not all(hasattr(student, m) for m in ("encode_queries", "encode_passages", "similarity")):
        return None
    docs = sorted({d for q in query_ids for d in dev.candidates[q]})
    q_vecs = _encode(student.encode_queries, [dev.queries[q] for q in query_ids], batch_size)
    p_vecs = _encode(student.encode_passages, dev.corpus.texts(docs), batch_size)
    if q_vecs is None or p_vecs is None:
        return None
    row = {d: i for i, d in enumerate(docs)}
    run: Run = {}
    for i, qid in enumerate(query_ids):
        cands = dev.candidates[qid]
        if cands:
            idx = torch.tensor([row[d] for d in cands], device=p_vecs.device)
            scores = student.similarity(q_vecs[i : i + 1], p_vecs[idx])[0]
            run[qid] = dict(zip(cands, scores.tolist(), strict=True))
    return run


def _representation(student: Any, query: str) -> str:
    """``"vectors"`` (one vector per text), ``"tokens"`` (ColBERT's token vectors) or
    ``"pairs"`` (a cross-encoder: only ``score_groups``), probed on one query."""
    if not all(hasattr(student, m) for m in ("encode_queries", "encode_passages", "similarity")):
        return "pairs"
    probe = student.encode_queries([query])
    if isinstance(probe, torch.Tensor) and probe.dim() == 2:
        return "vectors"
    return "tokens" if hasattr(probe, "vectors") and hasattr(probe, "mask") else "pairs"


def _rerank_tokens(student: Any, dev: DevSet, query_ids: list[str], batch_size: int) -> Run:
    """Re-rank with token vectors (ColBERT: ``encode_*`` give ``TokenEmbeddings``), each passage
    encoded once and MaxSim taken per query over its candidates.

    With ``search: pool`` every query's candidates are the same pool: scoring through
    ``score_groups`` would encode the whole pool once per query.
    """
    docs = sorted({d for q in query_ids for d in dev.candidates[q]})
    passages = student.encode_passages(dev.corpus.texts(docs), batch_size=batch_size)
    queries = student.encode_queries([dev.queries[q] for q in query_ids], batch_size=batch_size)
    row = {d: i for i, d in enumerate(docs)}
    run: Run = {}
    for i, qid in enumerate(query_ids):
        cands = dev.candidates[qid]
        if cands:
            idx = torch.tensor([row[d] for d in cands], device=passages.vectors.device)
            one = type(queries)(queries.vectors[i : i + 1], queries.mask[i : i + 1])
            subset = type(passages)(passages.vectors[idx], passages.mask[idx])
            scores = student.similarity(one, subset)[0]
            run[qid] = dict(zip(cands, scores.float().tolist(), strict=True))
    return run


def _rerank_groups(student: Any, dev: DevSet, query_ids: list[str], batch_size: int) -> Run:
    """Re-rank with ``score_groups``, one query and up to ``batch_size`` passages per call."""
    run: Run = {}
    for qid in query_ids:
        cands = dev.candidates[qid]
        scores: list[float] = []
        for start in range(0, len(cands), batch_size):
            chunk = cands[start : start + batch_size]
            part = student.score_groups([dev.queries[qid]], [dev.corpus.texts(chunk)])
            scores.extend(part[0].float().tolist())
        if cands:
            run[qid] = dict(zip(cands, scores, strict=True))
    return run


def rerank(student: Any, dev: DevSet, query_ids: list[str], batch_size: int = 64) -> Run:
    """Student scores of the candidates of ``query_ids`` (no gradient, eval mode).

    Shapes:
        returns query id -> {doc id: score} for each query's candidates.
    """
    module = student.model
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            if not query_ids:
                return {}
            kind = _representation(student, dev.queries[query_ids[0]])
            if kind == "vectors":
                run = _rerank_vectors(student, dev, query_ids, batch_size)
            elif kind == "tokens":
                run = _rerank_tokens(student, dev, query_ids, batch_size)
            else:
                run = None
            return run if run is not None else _rerank_groups(student, dev, query_ids, batch_size)
    finally:
        module.train(was_training)


def evaluate_student(student: Any, dev: DevSet, batch_size: int = 64) -> dict[str, float]:
    """Re-rank the dev candidates with the student and evaluate (all ranks join, all get it).

    Returns:
        ``{metric: value}`` averaged over the dev queries.
    """
    from evaluation import evaluate

    ids = sorted(dev.queries)
    rank, world = resolve_rank()
    run = rerank(student, dev, ids[rank::world], batch_size)
    if world > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
        parts: list[Any] = [None] * world
        torch.distributed.all_gather_object(parts, run)
        run = {q: scores for part in parts for q, scores in part.items()}
    result = evaluate(run, dev.qrels, [dev.metric], dev.conventions)
    return dict(result.means)
