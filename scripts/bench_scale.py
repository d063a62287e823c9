"""Scale check: the data path at N and N/10 passages, wall time and peak memory per stage.

    python scripts/bench_scale.py --passages 1000000            # 100k and 1M, then the ratio
    python scripts/bench_scale.py --passages 20000 --queries 500  # a quick look

A synthetic corpus (Zipfian words from a 50k vocabulary, passage lengths log-normal around 75
words, as in MS MARCO / BEIR passages) goes through what a user's run does with a large
collection, no transformer needed:

1. ``corpus``: JSONL -> the memory-mapped Arrow corpus (``load_corpus_file``);
2. ``bm25-index`` / ``bm25-search``: the bm25s index, then the top 100 for ``--queries``
   queries (spans of corpus passages);
3. ``score-store``: a score store of every (query, candidate) pair (10k x 100 = 1M pairs) from a
   cheap deterministic teacher (word overlap), through ``score_candidates``;
4. ``faiss-ivf``: an IVF index (``build_index``) over 64-d random projections of each
   passage's bag of words (Achlioptas 2003), chunked and resumable as for a student.

Each size runs in its own process (so one size's memory does not count in the other's), each
stage inside ``measure()`` (its own peak RSS on Linux). The table gives the 1M / 100k ratio of
every figure: 10x is linear; memory that grows slower than the corpus is the goal (Arrow holds
the texts; no Python object per passage). The ``corpus_mb`` row is the Arrow file's size, the
corpus itself. Results go to ``--out`` as JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
VOCAB, DIM = 50_000, 64


def vocabulary(rng: np.random.Generator) -> np.ndarray:
    """50k pronounceable pseudo-words (so the English stemmer and stop words leave them be)."""
    syllables = np.array([c + v for c in "bcdfghklmnprstvz" for v in "aeiou"])
    parts = rng.integers(0, len(syllables), size=(VOCAB, 3))
    words = np.unique(["".join(syllables[p]) + "x" for p in parts])
    return words


def write_corpus(path: Path, n: int, queries: int, seed: int = 0) -> dict[str, str]:
    """Write ``n`` synthetic passages as JSONL; return ``queries`` query texts (passage spans)."""
    rng = np.random.default_rng(seed)
    words = vocabulary(rng)
    ranks = np.arange(1, len(words) + 1)
    p = 1.0 / ranks**1.07
    p /= p.sum()
    lengths = np.clip(rng.lognormal(np.log(75), 0.5, n).astype(int), 5, 400)
    picked_q = set(rng.choice(n, size=min(queries, n), replace=False).tolist())
    out: dict[str, str] = {}
    with open(path, "w", encoding="utf-8") as handle:
        for start in range(0, n, 10_000):
            block = lengths[start : start + 10_000]
            tokens = words[rng.choice(len(words), size=int(block.sum()), p=p)]
            cuts = np.cumsum(block)[:-1]
            for i, passage in enumerate(np.split(tokens, cuts)):
                doc = start + i
                text = " ".join(passage)
                handle.write(json.dumps({"_id": f"d{doc}", "title": "", "text": text}) + "\n")
                if doc in picked_q:
                    at = int(rng.integers(0, max(1, len(passage) - 6)))
                    out[f"q{len(out)}"] = " ".join(passage[at : at + int(rng.integers(3, 9))])
    return out


class OverlapTeacher:
    """A cheap deterministic teacher: shared words, minus a hair of passage length."""

    def score(self, queries, passages, *, query_ids=None, doc_ids=None):  # noqa: ANN001
        out = []
        for query, group in zip(queries, passages, strict=True):
            words = set(query.split())
            out.append(
                np.array(
                    [len(words.intersection(p.split())) - 1e-4 * len(p) for p in group],
                    np.float32,
                )
            )
        return out

    def describe(self) -> dict:
        return {"kind": "bench-overlap", "score_transform": "none"}


def projection_encoder(seed: int = 0):
    """texts -> [n, 64] float32: a Gaussian random projection of hashed word counts."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    buckets = 1 << 18
    matrix = (rng.standard_normal((buckets, DIM)) / np.sqrt(DIM)).astype(np.float32)

    def encode(texts: list[str]) -> np.ndarray:
        rows, cols = [], []
        for i, text in enumerate(texts):
            hashed = [hash(w) & (buckets - 1) for w in text.split()]
            rows.extend([i] * len(hashed))
            cols.extend(hashed)
        counts = sp.csr_matrix(
            (np.ones(len(rows), np.float32), (rows, cols)), shape=(len(texts), buckets)
        )
        return np.asarray(counts @ matrix, dtype=np.float32)

    return encode


@contextlib.contextmanager
def cpu_seconds(into: dict):
    """User + system CPU seconds of this process in the block (robust to sharing the cores)."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    yield
    after = resource.getrusage(resource.RUSAGE_SELF)
    into["cpu_s"] = round(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, 2)


def run_one(n: int, queries: int, work: Path) -> dict:
    """Every stage at ``n`` passages in this process; returns the figures."""
    os.environ["RKD_CACHE_DIR"] = str(work / "cache")
    os.environ["PYTHONHASHSEED"] = os.environ.get("PYTHONHASHSEED", "0")
    from retrieval_kd.candidates.bm25 import BM25Index
    from retrieval_kd.data.files import load_corpus_file
    from retrieval_kd.index.build import build_index
    from retrieval_kd.manifest import measure, peak_memory_mb
    from retrieval_kd.store import score_candidates

    baseline_mb = round(peak_memory_mb(), 1)  # the interpreter and libraries, before any data
    stages: dict[str, dict] = {}
    start = time.perf_counter()
    texts = write_corpus(work / "corpus.jsonl", n, queries)
    generate_s = round(time.perf_counter() - start, 1)
    with measure() as cost, cpu_seconds(cost):
        corpus = load_corpus_file(work / "corpus.jsonl")
    stages["corpus"] = cost
    with measure() as cost, cpu_seconds(cost):
        bm25 = BM25Index.open(corpus, folder=work / "bm25")
    stages["bm25-index"] = cost
    with measure() as cost, cpu_seconds(cost):
        run = bm25.search(texts, k=100)
    stages["bm25-search"] = cost
    pairs = sum(len(v) for v in run.values())
    with measure() as cost, cpu_seconds(cost):
        store = score_candidates(
            OverlapTeacher(), texts, run, corpus.texts, work / "store", depth=100
        )
    stages["score-store"] = cost
    with measure() as cost, cpu_seconds(cost):
        index = build_index(
            work / "ivf", corpus.ids, corpus.texts, projection_encoder(),
            index_type="ivf", metric="cosine", chunk_size=20_000,
        )  # fmt: skip
    stages["faiss-ivf"] = cost
    return {
        "passages": n,
        "queries": len(texts),
        "pairs": pairs,
        "stored_pairs": store.num_pairs,
        "indexed": index.ntotal,
        "corpus_mb": round(corpus.path.stat().st_size / 2**20, 1),
        "baseline_mb": baseline_mb,
        "generate_s": generate_s,
        "stages": {k: {"wall_s": v["wall_s"], "cpu_s": v["cpu_s"],
                       "peak_memory_mb": v["peak_memory_mb"], "scope": v["peak_memory_scope"]}
                   for k, v in stages.items()},
    }  # fmt: skip


def table(small: dict, large: dict) -> str:
    """Markdown: each stage's wall and CPU time and peak memory at both sizes, and the
    large / small ratio of each."""
    a, b = small["passages"], large["passages"]
    lines = [
        f"| stage | wall {a:,} (s) | wall {b:,} (s) | CPU {a:,} (s) | CPU {b:,} (s) | CPU ratio "
        f"| peak MB {a:,} | peak MB {b:,} | memory ratio |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in small["stages"].items():
        t = large["stages"][name]
        lines.append(
            f"| {name} | {s['wall_s']:.1f} | {t['wall_s']:.1f} | {s['cpu_s']:.1f} | "
            f"{t['cpu_s']:.1f} | {t['cpu_s'] / max(s['cpu_s'], 1e-9):.1f}x | "
            f"{s['peak_memory_mb']:.0f} | {t['peak_memory_mb']:.0f} | "
            f"{t['peak_memory_mb'] / max(s['peak_memory_mb'], 1):.1f}x |"
        )
    lines.append(
        f"| (process before any data) | | | | | | {small['baseline_mb']:.0f} | "
        f"{large['baseline_mb']:.0f} | |"
    )
    if small.get("corpus_mb") and large.get("corpus_mb"):
        ratio = large["corpus_mb"] / small["corpus_mb"]
        lines.append(
            f"| (corpus Arrow file) | | | | | | {small['corpus_mb']:.0f} | "
            f"{large['corpus_mb']:.0f} | {ratio:.1f}x |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--passages", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: temp)")
    parser.add_argument("--out", type=Path, default=Path("runs/bench_scale.json"))
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.single:  # one size in this process: print its figures as JSON
        print(json.dumps(run_one(args.passages, args.queries, args.work)))
        return
    results = []
    with tempfile.TemporaryDirectory(dir=args.work) as scratch:
        for n in (args.passages // 10, args.passages):
            work = Path(scratch) / f"n{n}"
            work.mkdir()
            command = [sys.executable, __file__, "--single", "--passages", str(n),
                       "--queries", str(args.queries), "--work", str(work)]  # fmt: skip
            env = {**os.environ, "RKD_QUIET": "1", "PYTHONHASHSEED": "0"}
            done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
            if done.returncode != 0:
                sys.exit(f"size {n} failed:\n{done.stderr[-3000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
            stages = results[-1]["stages"]
            print(f"{n:,} passages: " + ", ".join(
                f"{k} {v['wall_s']:.1f} s / {v['peak_memory_mb']:.0f} MB" for k, v in stages.items()
            ), flush=True)  # fmt: skip
    print()
    print(table(*results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"\nfigures: {args.out}")


if __name__ == "__main__":
    main()
