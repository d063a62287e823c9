"""ANN-vs-exact report: how much recall an approximate index trades for how much speed.

:func:`ann_report` sweeps ``nprobe`` (IVF types) or ``efSearch`` (HNSW) over an index and, for
each setting, measures against exact (flat) search of the same vectors:

- ``recall``: recall@k of the exact top-k, averaged over queries;
- ``ndcg10``: nDCG@10 with the exact top-10 as the (binary) relevant set, or, given ``qrels``
  and a ``metric_fn``, that metric of the ANN run against the real judgements;
- ``qps``: queries per second of a batched search of all queries (the best of ``repeats``
  runs, and of more runs while they total under ``min_time_s``);
- the index size and build time.

:func:`report_markdown` renders the rows as a Markdown table and :func:`plot_report` draws
queries/s against recall as a PNG (matplotlib, Agg canvas, no display needed).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from retrieval_kd.index.dense import DenseIndex

Run = dict[str, dict[str, float]]
Qrels = dict[str, dict[str, int]]
MetricFn = Callable[[Run, Qrels], float]

HNSW_EF_SWEEP = (16, 32, 64, 128, 256, 512)
MIN_TIMED_S = 0.2


@dataclass(frozen=True)
class SweepRow:
    """One line of the report: an index at one search setting.

    Attributes:
        index: label of the index (its factory string unless named).
        setting: ``"nprobe=16"``, ``"efSearch=64"``, or ``"-"`` when nothing is tunable.
        param: the swept parameter's name (``nprobe``, ``efSearch``) or ``None``.
        value: the swept parameter's value or ``None``.
        k: depth of the recall.
        recall: recall@k against exact search, averaged over queries.
        ndcg10: nDCG@10 against the exact top-10 (or ``metric_fn`` against qrels).
        qps: queries per second.
        index_bytes: size of the FAISS index file.
        build_s: build (train + add) seconds when known.
    """

    index: str
    setting: str
    param: str | None
    value: int | None
    k: int
    recall: float
    ndcg10: float
    qps: float
    index_bytes: int
    build_s: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready copy."""
        return asdict(self)


def recall_at_k(approx: Sequence[Sequence[str]], exact: Sequence[Sequence[str]], k: int) -> float:
    """Mean over queries of ``|approx[:k] & exact[:k]| / |exact[:k]|`` (1.0 for empty exact).

    Shapes:
        approx, exact: Q lists of doc ids, best first.
    """
    values = []
    for found, truth in zip(approx, exact, strict=True):
        truth = set(truth[:k])
        values.append(len(truth & set(found[:k])) / len(truth) if truth else 1.0)
    return float(np.mean(values)) if values else 0.0


def ndcg_vs_exact(
    approx: Sequence[Sequence[str]], exact: Sequence[Sequence[str]], depth: int = 10
) -> float:
    """Mean nDCG@depth of ``approx`` taking the exact top-``depth`` as relevant (gain 1).

    Shapes:
        approx, exact: Q lists of doc ids, best first.
    """
    discounts = 1.0 / np.log2(np.arange(2, depth + 2))
    values = []
    for found, truth in zip(approx, exact, strict=True):
        relevant = set(truth[:depth])
        if not relevant:
            values.append(1.0)
            continue
        dcg = sum(discounts[r] for r, doc in enumerate(found[:depth]) if doc in relevant)
        values.append(dcg / discounts[: len(relevant)].sum())
    return float(np.mean(values)) if values else 0.0


def default_sweep(index: DenseIndex) -> tuple[str | None, list[int | None]]:
    """The parameter to sweep for ``index`` and its values (powers of two up to nlist)."""
    plan = index.plan
    if plan is not None and plan.nprobe is not None and plan.nlist:
        values = [2**i for i in range(12) if 2**i < plan.nlist]
        return "nprobe", values + [plan.nlist]
    if plan is not None and plan.ef_search is not None:
        return "efSearch", list(HNSW_EF_SWEEP)
    return None, [None]


def _timed_search(
    index: DenseIndex,
    queries: np.ndarray,
    k: int,
    params: dict[str, int],
    repeats: int,
    min_time_s: float,
) -> tuple[np.ndarray, list[list[str]], float]:
    """Search all queries ``repeats`` times, and more while under ``min_time_s`` in all (at
    most 100), so that fast settings are not timed by one noisy millisecond; returns the results
    and the best queries/s."""
    index.search(queries[: min(len(queries), 8)], k, **params)  # warm-up, applies params
    best, spent, runs = math.inf, 0.0, 0
    while runs < max(1, repeats) or (spent < min_time_s and runs < 100):
        start = time.perf_counter()
        scores, ids = index.search(queries, k, **params)
        took = time.perf_counter() - start
        best, spent, runs = min(best, took), spent + took, runs + 1
    return scores, ids, len(queries) / max(best, 1e-9)


def ann_report(
    index: DenseIndex,
    queries: np.ndarray,
    exact: DenseIndex | Sequence[Sequence[str]],
    *,
    k: int = 10,
    values: Sequence[int] | None = None,
    label: str | None = None,
    query_ids: Sequence[str] | None = None,
    qrels: Qrels | None = None,
    metric_fn: MetricFn | None = None,
    repeats: int = 1,
    min_time_s: float = MIN_TIMED_S,
) -> list[SweepRow]:
    """Sweep ``index``'s search parameter and compare each setting with exact search.

    Args:
        index: the (approximate) index.
        queries: query vectors.
        exact: a flat index over the same vectors (searched and timed too: its row comes first,
            labelled ``exact``), or the exact top ids of each query (at least ``max(k, 10)``).
        k: recall depth.
        values: ``nprobe`` / ``efSearch`` values (default: :func:`default_sweep`).
        label: the index's name in the table (default: its factory string).
        query_ids, qrels, metric_fn: when all given, ``ndcg10`` is
            ``metric_fn(run, qrels)`` of the run (``{qid: {doc_id: score}}``) at each setting.
        repeats: timed searches per setting (the fastest counts).
        min_time_s: keep searching (up to 100 times) until this much time is spent.

    Returns:
        One :class:`SweepRow` per setting (the exact one first when ``exact`` is an index).

    Shapes:
        queries: [Q, D]; exact (ids): Q lists.
    """
    depth = max(k, 10)
    if query_ids is not None and qrels is not None and metric_fn is not None:

        def quality(scores: np.ndarray, ids: list[list[str]], truth: Sequence) -> float:
            return float(metric_fn(_as_run(query_ids, scores, ids), qrels))
    else:

        def quality(scores: np.ndarray, ids: list[list[str]], truth: Sequence) -> float:
            return ndcg_vs_exact(ids, truth, 10)

    def measure(name: str, idx: DenseIndex, param: str | None, value: int | None, truth):
        params = {} if param is None else {"nprobe" if param == "nprobe" else "ef_search": value}
        scores, ids, qps = _timed_search(idx, queries, depth, params, repeats, min_time_s)
        truth = ids if truth is None else truth  # exact search is its own truth
        row = SweepRow(
            index=name,
            setting="-" if param is None else f"{param}={value}",
            param=param,
            value=value,
            k=k,
            recall=recall_at_k(ids, truth, k),
            ndcg10=quality(scores, ids, truth),
            qps=round(qps, 1),
            index_bytes=idx.size_bytes(),
            build_s=idx.build_info.get("build_s", _train_add_s(idx)),
        )
        return row, ids

    rows: list[SweepRow] = []
    truth = exact
    if isinstance(exact, DenseIndex):
        row, truth = measure("exact", exact, None, None, None)
        rows.append(row)
    param, default_values = default_sweep(index)
    name = label or index.factory or index.index_type
    for value in values if values is not None and param else default_values:
        rows.append(measure(name, index, param, value, truth)[0])
    return rows


def _train_add_s(index: DenseIndex) -> float | None:
    info = index.build_info
    if "train_s" not in info and "add_s" not in info:
        return None
    return round(info.get("train_s", 0.0) + info.get("add_s", 0.0), 3)


def _as_run(query_ids: Sequence[str], scores: np.ndarray, ids: list[list[str]]) -> Run:
    return {
        qid: {doc: float(s) for doc, s in zip(docs, row, strict=False)}
        for qid, docs, row in zip(query_ids, ids, scores, strict=True)
    }


def fastest_at_recall(rows: Sequence[SweepRow], target: float = 0.95) -> SweepRow | None:
    """The row with the most queries/s among those with ``recall >= target`` (else None)."""
    good = [r for r in rows if r.recall >= target]
    return max(good, key=lambda r: r.qps) if good else None


def report_markdown(rows: Sequence[SweepRow], metric_label: str = "nDCG@10 vs exact") -> str:
    """A Markdown table of the rows."""
    k = rows[0].k if rows else 10
    lines = [
        f"| index | setting | recall@{k} | {metric_label} | queries/s | size (MB) | build (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        build = "-" if r.build_s is None else f"{r.build_s:.1f}"
        lines.append(
            f"| {r.index} | {r.setting} | {r.recall:.4f} | {r.ndcg10:.4f} | {r.qps:,.0f} "
            f"| {r.index_bytes / 2**20:.1f} | {build} |"
        )
    return "\n".join(lines) + "\n"


def plot_report(rows: Sequence[SweepRow], path: str | Path, title: str | None = None) -> Path:
    """Plot queries/s (log scale) against recall@k, one line per index; write a PNG."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    for name in dict.fromkeys(r.index for r in rows):
        mine = [r for r in rows if r.index == name]
        style = {"marker": "*", "markersize": 12} if len(mine) == 1 else {"marker": "o"}
        axes.plot([r.recall for r in mine], [r.qps for r in mine], label=name, **style)
        for r in mine:
            if r.value is not None:
                axes.annotate(str(r.value), (r.recall, r.qps), fontsize=7, xytext=(3, 3),
                              textcoords="offset points")  # fmt: skip
    axes.set_yscale("log")
    axes.set_xlabel(f"recall@{rows[0].k if rows else 10} vs exact search")
    axes.set_ylabel("queries / s")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    if title:
        axes.set_title(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    return path
