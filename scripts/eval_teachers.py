"""Re-rank BM25's top-k with teachers on real collections and print nDCG@10 / MRR@10.

Each model teacher's scores go to a score store under ``--out`` (resumable: a re-run scores only
what is missing); ensembles are then built from the stored scores without re-scoring, which is
what the score store is for.

Usage:
    python scripts/eval_teachers.py --data scifact/test nfcorpus/dev --depth 100 \
        --teacher bi-encoder:sentence-transformers/all-MiniLM-L6-v2 \
        --teacher llm-yes-no:HuggingFaceTB/SmolLM2-135M-Instruct \
        --ensemble bm25+bi-encoder --out runs/teachers
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluation import evaluate
from retrieval_kd.candidates import bm25_candidates
from retrieval_kd.data import load_dataset, parse_data_split, truncate_run
from retrieval_kd.manifest import fingerprint
from retrieval_kd.store import score_candidates
from teachers import EnsembleTeacher, RunScoreTeacher, build_teacher, parse_teacher_spec

METRICS = ["ndcg@10", "mrr@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["scifact/test", "nfcorpus/dev"])
    parser.add_argument("--depth", type=int, default=100)
    parser.add_argument("--teacher", action="append", default=[], help="model teacher spec")
    parser.add_argument(
        "--ensemble",
        action="append",
        default=[],
        help="'+'-joined member names (bm25 or a teacher kind), z-scored, weight 1",
    )
    parser.add_argument("--max-queries", type=int, default=None, help="first N queries only")
    parser.add_argument("--out", type=Path, default=Path("runs/teachers"))
    args = parser.parse_args()

    table: list[dict] = []
    for data in args.data:
        name, split = parse_data_split(data)
        dataset = load_dataset(name, split)
        queries = dataset.queries
        if args.max_queries:
            queries = dict(list(queries.items())[: args.max_queries])
        bm25, _ = bm25_candidates(dataset.corpus, queries, k=args.depth)
        candidates = truncate_run(bm25, args.depth)
        runs = {"bm25": candidates}
        for spec in args.teacher:
            kind = parse_teacher_spec(spec)["kind"]
            folder = args.out / data.replace("/", "-") / f"{kind}-{fingerprint(spec)[:8]}"
            teacher = build_teacher(spec, candidates)
            store = score_candidates(
                teacher,
                queries,
                candidates,
                dataset.corpus.texts,
                folder,
                depth=args.depth,
                qrels=dataset.qrels,
                candidate_source={"name": "bm25", "depth": args.depth},
            )
            runs[kind] = store.to_run()
            cost = (store.manifest or {}).get("cost", {})
            print(f"{data} {kind}: {cost}")
        for combo in args.ensemble:
            members = [(RunScoreTeacher(runs[m], m), 1.0) for m in combo.split("+")]
            ensemble = EnsembleTeacher(members, calibration="zscore")
            qids = list(candidates)
            docs = [list(candidates[q]) for q in qids]
            scores = ensemble.score([queries[q] for q in qids], docs, query_ids=qids, doc_ids=docs)
            runs[f"ensemble({combo})"] = {
                q: dict(zip(d, s.tolist(), strict=True))
                for q, d, s in zip(qids, docs, scores, strict=True)
            }
        for label, run in runs.items():
            means = evaluate(run, dataset.qrels, METRICS, conventions="beir").means
            table.append(
                {"data": data, "teacher": label, **{m: round(v, 4) for m, v in means.items()}}
            )
    print(f"\n| data | teacher (re-ranking BM25 top-{args.depth}) | nDCG@10 | MRR@10 |")
    print("|---|---|---|---|")
    for row in table:
        print(f"| {row['data']} | {row['teacher']} | {row['ndcg@10']:.4f} | {row['mrr@10']:.4f} |")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "teachers.json").write_text(json.dumps(table, indent=2))


if __name__ == "__main__":
    main()
