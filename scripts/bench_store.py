"""Score-store memory and read time vs the usual alternative, a ranx-style dict of dicts.

A user without the score store keeps teacher scores as ``{query_id: {doc_id: score}}``, a TREC run
read into plain Python (the dict of dicts ``ranx.Run`` is built from). The store keeps Arrow
columns instead.
This script writes one synthetic store (``--queries`` x ``--depth`` pairs, random doc ids from an
MS MARCO-sized id space), then, each arm in its own process so peak memory is its own, reads it
(a) as a :class:`~retrieval_kd.store.ScoreStore` and (b) the same pairs from a TREC run file into
the dict of dicts, and prints the resident memory each added, the read time, the time of one pass
over every query's candidates, and the memory ratio.

Usage:
    python scripts/bench_store.py --queries 200000 --depth 50   # 10M pairs
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    """Resident set size of this process now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * 4096 / 2**20


def write_store(folder: Path, queries: int, depth: int, seed: int = 0) -> None:
    """The synthetic store in ``folder/store`` and the same pairs as ``folder/run.trec``."""
    from retrieval_kd.store import ScoredQuery, ShardWriter

    rng = np.random.default_rng(seed)
    writer = ShardWriter(folder / "store")
    with open(folder / "run.trec", "w") as trec:
        for start in range(0, queries, 10_000):
            rows = [
                ScoredQuery(
                    f"q{i}",
                    [str(d) for d in rng.choice(8_841_823, depth, replace=False)],
                    rng.standard_normal(depth).astype(np.float32),
                )
                for i in range(start, min(queries, start + 10_000))
            ]
            writer.write(rows)
            for row in rows:
                pairs = zip(row.doc_ids, row.scores.tolist(), strict=True)
                for rank, (doc, score) in enumerate(pairs, start=1):
                    trec.write(f"{row.query_id} Q0 {doc} {rank} {score} bench\n")


def measure(arm: str, folder: str) -> dict[str, float]:
    """Read the store one way; memory it added, read time, and one full pass over its queries."""
    import pyarrow.parquet  # noqa: F401  (both arms pay for the imports before measuring)

    from retrieval_kd.store import ScoreStore

    before = rss_mib()
    start = time.perf_counter()
    if arm == "dict":  # what loading a TREC run gives: {query: {doc: score}}
        table: dict[str, dict[str, float]] = {}
        with open(Path(folder) / "run.trec") as trec:
            for line in trec:
                qid, _, doc, _, score, _ = line.split()
                table.setdefault(qid, {})[doc] = float(score)
    else:
        store = ScoreStore(Path(folder) / "store")
    read_s = time.perf_counter() - start
    added = rss_mib() - before
    start = time.perf_counter()
    if arm == "dict":
        pairs = sum(len(docs) for docs in table.values())
    else:
        pairs = sum(len(store.get(q).doc_ids) for q in store.query_ids())
    pass_s = time.perf_counter() - start
    return {"pairs": pairs, "rss_added_mib": added, "read_s": read_s, "pass_s": pass_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--depth", type=int, default=50)
    parser.add_argument("--arm", choices=["store", "dict"], help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(measure(args.arm, args.folder)))
        return
    with tempfile.TemporaryDirectory() as folder:
        write_store(Path(folder), args.queries, args.depth)
        results = {}
        for arm in ("store", "dict"):
            out = subprocess.run(
                [sys.executable, __file__, "--arm", arm, "--folder", folder],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            results[arm] = json.loads(out.strip().splitlines()[-1])
    store, table = results["store"], results["dict"]
    million = store["pairs"] / 1e6
    print(f"{store['pairs']:,} pairs ({args.queries:,} queries x {args.depth})")
    for name, r in (("ScoreStore", store), ("dict of dicts", table)):
        print(
            f"  {name:14s} +{r['rss_added_mib']:8.1f} MiB ({r['rss_added_mib'] / million:6.1f} "
            f"MiB per 1M pairs), read {r['read_s']:6.2f} s, one pass {r['pass_s']:6.2f} s"
        )
    ratio = store["rss_added_mib"] / table["rss_added_mib"]
    print(f"memory ratio ScoreStore / dict of dicts: {ratio:.3f}")


if __name__ == "__main__":
    main()
