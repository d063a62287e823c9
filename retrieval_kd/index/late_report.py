"""Recall of ColBERT's ANN candidate generation against exhaustive MaxSim, setting by setting.

For each ``(nprobe, candidates_per_token[, rescore_depth])`` setting,
:func:`late_interaction_report` runs the two-stage search of
:class:`~retrieval_kd.index.late_interaction.LateInteractionIndex` (token-index candidates,
exact MaxSim re-scoring) and measures, against exact MaxSim over every document
(:meth:`~LateInteractionIndex.exhaustive_search`, the first row):

- ``recall@k`` for each ``k`` of ``ks``: the share of the exhaustive top-k that the pipeline's
  top-k holds, averaged over queries. Since re-scoring is exact, a miss means stage 1 did not
  make the document a candidate (or ``rescore_depth`` pruned it);
- ``ndcg10``: nDCG@10 of the run against relevance judgements, given ``qrels`` and a
  ``metric_fn`` (else ``None``);
- ``candidates``: documents re-scored per query (mean), what stage 2 costs;
- ``qps``: queries per second of the whole search (one timed pass over all queries).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from retrieval_kd.index.late_interaction import LateInteractionIndex
from retrieval_kd.index.report import recall_at_k

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]
MetricFn = Callable[[Run, Qrels], float]


@dataclass(frozen=True)
class LateSweepRow:
    """One setting of the two-stage search (or the exhaustive baseline).

    Attributes:
        setting: ``"exhaustive"`` or ``"nprobe=16 k'=64"``.
        nprobe: IVF lists visited per query token (``None`` for exhaustive).
        candidates_per_token: token hits per query token (``None`` for exhaustive).
        rescore_depth: most candidates re-scored per query (``None``: all of them).
        recall: ``{k: recall@k against exhaustive MaxSim}``.
        ndcg10: nDCG@10 against qrels when a metric was given, else ``None``.
        candidates: documents scored with exact MaxSim per query (mean).
        qps: queries per second.
    """

    setting: str
    nprobe: int | None
    candidates_per_token: int | None
    rescore_depth: int | None = None
    recall: dict[int, float] = field(default_factory=dict)
    ndcg10: float | None = None
    candidates: float = 0.0
    qps: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


def late_interaction_report(
    index: LateInteractionIndex,
    queries: Sequence[Any],
    settings: Sequence[tuple[int | None, ...]],
    *,
    ks: Sequence[int] = (10, 100),
    query_ids: Sequence[str] | None = None,
    qrels: Qrels | None = None,
    metric_fn: MetricFn | None = None,
) -> list[LateSweepRow]:
    """Compare the two-stage search at each setting with exhaustive MaxSim.

    Args:
        index: the late-interaction index.
        queries: one query token matrix per query.
        settings: ``(nprobe, candidates_per_token)`` pairs, or triples with a
            ``rescore_depth`` (``None``: the index's default; no depth: re-score all).
        ks: recall depths; the searches return ``max(ks, 10)`` docs.
        query_ids, qrels, metric_fn: when all given, ``ndcg10 = metric_fn(run, qrels)``.

    Returns:
        The exhaustive row first, then one row per setting.

    Shapes:
        queries: Q matrices [n_q, D].
    """
    depth_k = max(*ks, 10)
    judged = query_ids is not None and qrels is not None and metric_fn is not None

    def quality(scores: Any, ids: list[list[str]]) -> float | None:
        if not judged:
            return None
        run = {
            q: {d: float(s) for d, s in zip(docs, row, strict=False)}
            for q, docs, row in zip(query_ids, ids, scores, strict=True)
        }
        return float(metric_fn(run, qrels))

    start = time.perf_counter()
    scores, exact = index.exhaustive_search(queries, depth_k)
    qps = len(queries) / max(time.perf_counter() - start, 1e-9)
    rows = [
        LateSweepRow(
            "exhaustive",
            None,
            None,
            None,
            {k: 1.0 for k in ks},
            quality(scores, exact),
            float(index.ntotal),
            round(qps, 2),
        )
    ]
    for nprobe, per_token, *depth in settings:
        rescore_depth = depth[0] if depth else None
        start = time.perf_counter()
        top, docs, counts = index.search_positions(
            queries,
            depth_k,
            nprobe=nprobe,
            candidates_per_token=per_token,
            rescore_depth=rescore_depth,
        )
        qps = len(queries) / max(time.perf_counter() - start, 1e-9)
        ids = [[index.ids[p] for p in positions] for positions in docs]
        nprobe = nprobe if nprobe is not None else index.nprobe
        nprobe = min(nprobe, index.nlist) if nprobe and index.nlist else nprobe
        per_token = per_token or index.candidates_per_token
        label = f"nprobe={nprobe} k'={per_token}" + (
            f" depth={rescore_depth}" if rescore_depth else ""
        )
        rows.append(
            LateSweepRow(
                label,
                nprobe,
                per_token,
                rescore_depth,
                {k: recall_at_k(ids, exact, k) for k in ks},
                quality(top, ids),
                float(counts.mean()) if len(counts) else 0.0,
                round(qps, 2),
            )
        )
    return rows


def late_report_markdown(rows: Sequence[LateSweepRow]) -> str:
    """A Markdown table of the rows (recall columns from the first row's depths)."""
    ks = list(rows[0].recall) if rows else [10]
    recall_heads = " | ".join(f"recall@{k} vs exhaustive" for k in ks)
    lines = [
        f"| search | nprobe | candidates/token | {recall_heads} | nDCG@10 (qrels) "
        "| docs re-scored / query | queries/s |",
        "|---|---:|---:|" + "---:|" * len(ks) + "---:|---:|---:|",
    ]
    for r in rows:
        recalls = " | ".join(f"{r.recall[k]:.4f}" for k in ks)
        ndcg = "-" if r.ndcg10 is None else f"{r.ndcg10:.4f}"
        nprobe = "-" if r.nprobe is None else str(r.nprobe)
        per_token = "-" if r.candidates_per_token is None else str(r.candidates_per_token)
        lines.append(
            f"| {r.setting} | {nprobe} | {per_token} | {recalls} | {ndcg} "
            f"| {r.candidates:,.0f} | {r.qps:,.1f} |"
        )
    return "\n".join(lines) + "\n"
