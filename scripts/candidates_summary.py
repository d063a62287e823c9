"""Summarise the runs of ``scripts/candidates_table.sh`` into one Markdown table.

    python scripts/candidates_summary.py runs/cand16

One row per (cell, seed) folder ``<cell>-s<seed>``: the distilled student's and the InfoNCE
baseline's test nDCG@10 from the run's ``report/metrics.json``, their difference, the paired
t-test p-value of each against the untrained student as the report computed it, the teacher's
re-ranking figure, and what the false-negative rule did (queries touched, candidates dropped,
from the distilled student's training manifest). Then the mean over seeds of each cell.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

DISTILLED, BASELINE = "student (distilled)", "baseline (InfoNCE, no teacher)"


def row(folder: Path) -> dict | None:
    metrics = folder / "report" / "metrics.json"
    if not metrics.is_file():
        return None
    means = json.loads(metrics.read_text())["means"]
    train = folder / "train-distilled" / "model" / "manifest.json"
    fn = json.loads(train.read_text())["result"].get("false_negatives") if train.is_file() else None
    cell, seed = re.fullmatch(r"(.+)-s(\d+)", folder.name).groups()
    return {
        "cell": cell,
        "seed": int(seed),
        "distilled": means[DISTILLED]["ndcg@10"],
        "baseline": means[BASELINE]["ndcg@10"],
        "teacher": means.get("teacher", {}).get("ndcg@10"),  # absent: score_eval false
        "untrained": means["student (untrained)"]["ndcg@10"],
        "fn": fn,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    args = parser.parse_args()
    rows = [r for f in sorted(args.root.glob("*-s*")) if f.is_dir() and (r := row(f))]
    print("| cell | seed | distilled | baseline | distilled − baseline | FN rule: queries "
          "touched / dropped |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---|")
    by_cell: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_cell[r["cell"]].append(r)
        fn = r["fn"]
        what = f"{fn['queries_touched']} / {fn['dropped']}" if fn else "off"
        print(f"| {r['cell']} | {r['seed']} | {r['distilled']:.4f} | {r['baseline']:.4f} | "
              f"{r['distilled'] - r['baseline']:+.4f} | {what} |")  # fmt: skip
    print()
    print("| cell | seeds | distilled (mean) | baseline (mean) | difference |")
    print("|---|---:|---:|---:|---:|")
    for cell, items in by_cell.items():
        d = sum(r["distilled"] for r in items) / len(items)
        b = sum(r["baseline"] for r in items) / len(items)
        print(f"| {cell} | {len(items)} | {d:.4f} | {b:.4f} | {d - b:+.4f} |")
    if rows:
        print(f"\nuntrained student {rows[0]['untrained']:.4f}")
        for cell, items in by_cell.items():
            if items[0]["teacher"] is not None:
                print(f"teacher of {cell} (re-ranking BM25 top 100): {items[0]['teacher']:.4f}")


if __name__ == "__main__":
    main()
