"""Benchmark: CrossEncoderTeacher vs plain sentence-transformers CrossEncoder.predict.

Same model, same (query, passage) pairs, same batch size, measured in one run:

1. pairs/s of ``sentence_transformers.CrossEncoder.predict`` (fp32) and of ``CrossEncoderTeacher``
   in fp32 and in bf16 (on CPUs with native bf16, e.g. AVX512-BF16 / AMX), the ratio (target
   >= 1.3x), and how far each one's scores are from fp32 predict's (max difference, mean
   per-query Kendall tau);
2. pairs/s of a fully cached re-run of the scoring loop (every pair already in the store);
3. peak memory (RSS) of the scoring loop at N and 10N pairs, each in a fresh process
   (target: flat, i.e. the store does not grow memory with the number of pairs).

The model is a MiniLM-L6-sized cross-encoder built from the all-MiniLM-L6-v2 weights with a
fresh classification head: speed does not depend on the head's training.

Usage:
    python scripts/bench_teacher.py --pairs 5000 --batch-size 32 --max-length 256
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def build_cross_encoder(folder: Path) -> Path:
    """MiniLM-L6 encoder weights + a fresh 1-logit head, saved as a plain HF folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from retrieval_kd.models import resolve_model

    source = str(resolve_model("sentence-transformers/all-MiniLM-L6-v2").path)
    model = AutoModelForSequenceClassification.from_pretrained(source, num_labels=1)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def scifact_pairs(n_pairs: int, depth: int) -> tuple[dict, dict, object]:
    """(queries, candidates, corpus): BM25 top-``depth`` of SciFact queries, ~n_pairs pairs."""
    from retrieval_kd.candidates import bm25_candidates
    from retrieval_kd.data import load_dataset

    dataset = load_dataset("scifact")  # every query, judged or not
    n_queries = max(1, n_pairs // depth)
    queries = dict(list(dataset.queries.items())[:n_queries])
    run, _ = bm25_candidates(dataset.corpus, queries, k=depth)
    return queries, run, dataset.corpus


def flat_pairs(queries: dict, run: dict, corpus, limit: int) -> list[tuple[str, str]]:
    pairs = [(queries[q], doc) for q in run for doc in run[q]][:limit]
    texts = corpus.texts([doc for _, doc in pairs])
    return [(q, t) for (q, _), t in zip(pairs, texts, strict=True)]


def per_query_kendall(a: np.ndarray, b: np.ndarray, sizes: list[int], n: int) -> float:
    """Mean Kendall tau between two score vectors over each query's candidates (first n pairs)."""
    from scipy.stats import kendalltau

    taus, start = [], 0
    for size in sizes:
        stop = min(start + size, n)
        if stop - start > 1:
            taus.append(kendalltau(a[start:stop], b[start:stop]).statistic)
        start = stop
    return float(np.nanmean(taus))


def memory_child(model: str, n_pairs: int, depth: int, max_length: int, batch: int) -> None:
    """Score ~n_pairs into a fresh store and print peak RSS (run in its own process)."""
    from retrieval_kd.manifest import peak_memory_mb
    from retrieval_kd.store import score_candidates
    from teachers.cross_encoder import CrossEncoderTeacher

    queries, run, corpus = scifact_pairs(n_pairs, depth)
    teacher = CrossEncoderTeacher(model, max_length=max_length, batch_size=batch)
    with tempfile.TemporaryDirectory() as store_dir:
        start = time.perf_counter()
        store = score_candidates(teacher, queries, run, corpus.texts, store_dir, depth=depth)
        seconds = time.perf_counter() - start
        print(
            json.dumps(
                {
                    "pairs": store.num_pairs,
                    "peak_rss_mb": round(peak_memory_mb(), 1),
                    "pairs_per_s": round(store.num_pairs / seconds, 1),
                }
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument(
        "--memory-pairs",
        type=int,
        nargs=2,
        default=[10_000, 100_000],
        help="pair counts of the memory check (each in its own process)",
    )
    parser.add_argument(
        "--memory-max-length",
        type=int,
        default=32,
        help="shorter pairs in the memory check, to keep 100k pairs quick",
    )
    parser.add_argument(
        "--dtypes",
        nargs="+",
        default=["float32", "bfloat16"],
        help="CrossEncoderTeacher dtypes to time (the first one also runs the store checks)",
    )
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        model, n_pairs, depth, max_length, batch = args.child
        memory_child(model, int(n_pairs), int(depth), int(max_length), int(batch))
        return

    import torch
    from sentence_transformers import CrossEncoder

    from retrieval_kd.store import score_candidates
    from teachers.cross_encoder import CrossEncoderTeacher

    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
        f"device {'cuda' if torch.cuda.is_available() else 'cpu'}"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-teacher-"))
    model_dir = build_cross_encoder(work / "minilm-l6-ce")
    queries, run, corpus = scifact_pairs(args.pairs, args.depth)
    pairs = flat_pairs(queries, run, corpus, args.pairs)
    print(
        f"{len(pairs)} SciFact (query, BM25 candidate) pairs, batch {args.batch_size}, "
        f"max length {args.max_length}"
    )

    plain = CrossEncoder(
        str(model_dir), max_length=args.max_length, activation_fn=torch.nn.Identity()
    )
    teachers = {
        dtype: CrossEncoderTeacher(
            str(model_dir), max_length=args.max_length, batch_size=args.batch_size, dtype=dtype
        )
        for dtype in args.dtypes
    }
    warm = pairs[: args.batch_size]
    plain.predict(warm, batch_size=args.batch_size, show_progress_bar=False)
    for teacher in teachers.values():
        teacher.score_pairs(warm)

    def timed(fn) -> tuple[float, np.ndarray]:
        start = time.perf_counter()
        scores = np.asarray(fn(), dtype=np.float64)
        return time.perf_counter() - start, scores

    t_plain, s_plain = timed(
        lambda: plain.predict(pairs, batch_size=args.batch_size, show_progress_bar=False)
    )
    print(f"{'sentence-transformers CrossEncoder.predict':48s} {len(pairs) / t_plain:8.1f} pairs/s")
    for dtype, teacher in teachers.items():
        t_ours, s_ours = timed(lambda teacher=teacher: teacher.score_pairs(pairs))
        tau = per_query_kendall(s_plain, s_ours, [len(run[q]) for q in run], len(pairs))
        print(
            f"{'retrieval_kd CrossEncoderTeacher (' + dtype + ')':48s} "
            f"{len(pairs) / t_ours:8.1f} pairs/s  ratio {t_plain / t_ours:.2f}x (target >= 1.3x); "
            f"vs fp32 predict: max |diff| {np.abs(s_plain - s_ours).max():.2e}, "
            f"mean per-query Kendall tau {tau:.4f}"
        )
    teacher = next(iter(teachers.values()))

    store_dir = work / "store"
    first_run = {q: run[q] for q in list(run)}
    score_candidates(teacher, queries, first_run, corpus.texts, store_dir, depth=args.depth)
    start = time.perf_counter()
    store = score_candidates(teacher, queries, first_run, corpus.texts, store_dir, depth=args.depth)
    cached = time.perf_counter() - start
    print(
        f"fully cached re-run: {store.num_pairs} pairs in {cached:.3f} s = "
        f"{store.num_pairs / cached:,.0f} pairs/s"
    )

    if args.skip_memory:
        return
    for n in args.memory_pairs:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                str(model_dir),
                str(n),
                str(args.depth),
                str(args.memory_max_length),
                str(args.batch_size),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "RKD_QUIET": "1"},
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"scoring loop at {result['pairs']:>7,} pairs (max length "
            f"{args.memory_max_length}): peak RSS {result['peak_rss_mb']:.0f} MiB, "
            f"{result['pairs_per_s']} pairs/s"
        )


if __name__ == "__main__":
    main()
