"""Re-rank BM25's top-k with teachers on real collections and print nDCG@10 / MRR@10.

Each model teacher's scores go to a score store under ``--out`` (resumable: a re-run scores only
what is missing); ensembles are then built from the stored scores without re-scoring, which is
what the score store is for.

Usage:
    python scripts/eval_teachers.py --data scifact/test nfcorpus/dev --depth 100 \
        --teacher bi-encoder:sentence-transformers/all-MiniLM-L6-v2 \
        --teacher llm-yes-no:HuggingFaceTB/SmolLM2-135M-Instruct \
        --ensemble bm25+bi-encoder --out runs/teachers

Scores made elsewhere (e.g. an LLM teacher on a GPU machine with ``rkd score --candidates
scifact/test --depth 100``) join as ``--store scifact/test:llm-ql=<store folder>`` and are used
like a scored teacher, in the table and in ensembles; so do scores written as a TREC run, such as
``crossfit_teacher.py``'s out-of-fold ``oof.trec`` (``--store scifact/train:cf=<out>/oof.trec``).
BM25 on another machine can differ at the
tail (near-tied scores at rank ~100 under another numpy), so every row of such a collection is
evaluated on the pairs that all of them scored; the number of pairs dropped is printed.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from evaluation import evaluate
from retrieval_kd.candidates import bm25_candidates
from retrieval_kd.data import load_dataset, parse_data_split, read_run, truncate_run
from retrieval_kd.errors import InputError
from retrieval_kd.manifest import fingerprint
from retrieval_kd.store import ScoreStore, score_candidates
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
    parser.add_argument(
        "--store",
        action="append",
        default=[],
        metavar="DATA/SPLIT:NAME=FOLDER",
        help="a score store (or a TREC run file of scores) made elsewhere on the same BM25 "
        "candidates, e.g. scifact/test:llm-ql=runs/gpu/scifact-test/llm-ql",
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
        kinds = [parse_teacher_spec(spec)["kind"] for spec in args.teacher]
        for spec, kind in zip(args.teacher, kinds, strict=True):
            label = kind if kinds.count(kind) == 1 else spec  # two of a kind: their specs
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
            runs[label] = store.to_run()
            cost = (store.manifest or {}).get("cost", {})
            print(f"{data} {label}: {cost}")
        for name, folder in stores_for(data, args.store):
            runs[name] = stored_run(folder)
            if folder.is_dir():
                print(f"{data} {name}: {(ScoreStore(folder).manifest or {}).get('cost', {})}")
        if args.store:
            runs, dropped = on_common_pairs(runs)
            print(f"{data}: {dropped} candidate pair(s) not scored by every teacher left out")
            candidates = runs["bm25"]
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


def stores_for(data: str, specs: list[str]) -> list[tuple[str, Path]]:
    """The ``--store`` entries of one ``data/split``, as (name, folder)."""
    picked = []
    for spec in specs:
        where, sep, rest = spec.partition(":")
        name, eq, folder = rest.partition("=")
        if not (sep and eq and name and folder):
            raise InputError(f"--store wants DATA/SPLIT:NAME=FOLDER, got {spec!r}")
        if where == data:
            picked.append((name, Path(folder)))
    return picked


def complete_store(folder: Path) -> ScoreStore:
    """The score store at ``folder``; one with no manifest (unfinished) is refused."""
    store = ScoreStore(folder)
    if store.manifest is None:
        raise InputError("score store has no manifest (unfinished?)", path=folder)
    return store


def stored_run(path: Path) -> dict:
    """The scores at ``path``: a finished score store's, or a TREC run file's."""
    return read_run(path) if path.is_file() else complete_store(path).to_run()


def on_common_pairs(runs: dict[str, dict]) -> tuple[dict[str, dict], int]:
    """Every run cut to the (query, doc) pairs that all runs hold, and how many pairs went."""
    queries = set.intersection(*(set(run) for run in runs.values()))
    common = {q: set.intersection(*(set(run[q]) for run in runs.values())) for q in queries}
    cut = {
        name: {q: {d: s for d, s in run[q].items() if d in common[q]} for q in queries}
        for name, run in runs.items()
    }
    before = sum(len(docs) for docs in runs["bm25"].values())
    return cut, before - sum(len(docs) for docs in cut["bm25"].values())


if __name__ == "__main__":
    main()
