"""One table over seeds of ``rkd distill`` runs: each seed's rows, their mean, and a paired test.

    python scripts/seed_table.py --data scifact --split test \
        runs/adapt-scifact runs/adapt-scifact-s43 runs/adapt-scifact-s44

Reads each run folder's ``retrieve-<student>/run.trec`` and the qrels of the evaluation split,
scores them with :func:`evaluation.evaluate`, and prints Markdown: one
row per (student, seed), the mean over seeds, and the paired t-test and Fisher randomization
test of ``--treatment`` against ``--control`` on the per-query scores averaged over seeds (one
pair per judged query, so the test asks whether the difference holds across queries, not just
across the seeds' luck).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import yaml

from evaluation import evaluate
from evaluation.significance import fisher_randomization_test, paired_t_test
from retrieval_kd.data import load_dataset, read_run


def _seed(run_dir: Path) -> int:
    """The training seed of the run's distilled student (the seeds' only difference)."""
    config = run_dir / "train-distilled" / "model" / "train_config.yaml"
    return yaml.safe_load(config.read_text(encoding="utf-8"))["training"]["seed"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="rkd distill output folders")
    parser.add_argument("--data", required=True, help="collection (as in the run's config)")
    parser.add_argument("--split", required=True, help="the judged split the runs searched")
    parser.add_argument("--conventions", default="beir")
    parser.add_argument("--students", default="untrained,baseline,distilled")
    parser.add_argument("--control", default="baseline")
    parser.add_argument("--treatment", default="distilled")
    parser.add_argument("--metric", default="ndcg@10")
    args = parser.parse_args()

    qrels = load_dataset(args.data, args.split).qrels
    per_query: dict[str, list[dict[str, float]]] = {}
    rows = [f"| student | seed | {args.metric} |", "|---|---|---|"]
    for student in args.students.split(","):
        for run_dir in args.runs:
            seed = _seed(run_dir)
            run = read_run(run_dir / f"retrieve-{student}" / "run.trec")
            result = evaluate(run, qrels, [args.metric], conventions=args.conventions)
            per_query.setdefault(student, []).append(result.per_query[args.metric])
            rows.append(f"| {student} | {seed} | {result.means[args.metric]:.4f} |")
        means = [float(np.mean(list(q.values()))) for q in per_query[student]]
        rows.append(
            f"| **{student}** | mean ± sd | **{np.mean(means):.4f}** ± {np.std(means):.4f} |"
        )
    print(f"{args.data} {args.split}, {len(args.runs)} seed(s)\n")
    print("\n".join(rows))
    queries = sorted(per_query[args.control][0])

    def averaged(student: str) -> np.ndarray:
        return np.array([np.mean([seed[q] for seed in per_query[student]]) for q in queries])

    control, treatment = averaged(args.control), averaged(args.treatment)
    print(
        f"\n{args.treatment} - {args.control}: {np.mean(treatment - control):+.4f} {args.metric} "
        f"over {len(queries)} queries (per-query means over seeds); paired t-test "
        f"p = {paired_t_test(control, treatment):.4g}, Fisher randomization "
        f"p = {fisher_randomization_test(control, treatment):.4g}"
    )


if __name__ == "__main__":
    main()
