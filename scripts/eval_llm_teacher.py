"""Re-rank BM25's top-k with a pointwise LLM teacher; print nDCG@10 / MRR@10 and pairs per second.

BM25 is scored on the same query slice and depth, so the two lines compare like with like. The
throughput line (pairs/s, teacher load time) is what full scoring runs can be planned from.

Usage:
    RKD_DATA_DIR=../shared/data python scripts/eval_llm_teacher.py --data scifact/test \
        --mode yes_no query_likelihood --queries 20 --depth 20
"""

from __future__ import annotations

import argparse
import time

from evaluation import evaluate
from retrieval_kd.candidates import bm25_candidates
from retrieval_kd.data import load_dataset, parse_data_split
from teachers.llm_pointwise import LLMPointwiseTeacher

METRICS = ["ndcg@10", "mrr@10"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="scifact/test")
    parser.add_argument("--model", default="HuggingFaceTB/SmolLM2-135M-Instruct")
    parser.add_argument(
        "--mode", nargs="+", choices=["yes_no", "query_likelihood"], default=["yes_no"]
    )
    parser.add_argument("--queries", type=int, default=None, help="first N judged queries only")
    parser.add_argument("--depth", type=int, default=100, help="BM25 candidates per query")
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None)
    parser.add_argument("--dtype", default=None)
    args = parser.parse_args()

    name, split = parse_data_split(args.data)
    dataset = load_dataset(name, split)
    queries = dict(list(dataset.queries.items())[: args.queries])
    bm25, _ = bm25_candidates(dataset.corpus, queries, k=args.depth)
    qids = [q for q in queries if bm25.get(q)]
    docs = [list(bm25[q]) for q in qids]

    texts = [dataset.corpus.texts(d) for d in docs]
    qrels = {q: dataset.qrels[q] for q in qids}  # queries left out of the slice must not count
    pairs = sum(len(d) for d in docs)
    print(f"{args.data}: {len(qids)} queries x top-{args.depth} BM25 ({pairs} pairs)")
    _report("bm25", {q: bm25[q] for q in qids}, qrels)
    for mode in args.mode:
        start = time.perf_counter()
        teacher = LLMPointwiseTeacher(
            args.model,
            mode=mode,
            max_length=args.max_length,
            batch_size=args.batch_size,
            device=args.device,
            dtype=args.dtype,
        )
        loaded = time.perf_counter()
        scores = teacher.score([queries[q] for q in qids], texts, query_ids=qids, doc_ids=docs)
        done = time.perf_counter()
        run = {
            q: dict(zip(d, s.tolist(), strict=True))
            for q, d, s in zip(qids, docs, scores, strict=True)
        }
        _report(f"llm {mode}", run, qrels)
        tokens = sum(
            len(teacher.encode(queries[q], p).input_ids)
            for q, group in zip(qids, texts, strict=True)
            for p in group
        )
        info = teacher.describe()
        print(
            f"    {info['model']} ({info['source']}, {info['dtype']}, {info['device']}, "
            f"batch {args.batch_size}, max_length {args.max_length}): load "
            f"{loaded - start:.1f} s, {pairs / (done - loaded):.2f} pairs/s "
            f"({done - loaded:.1f} s), {tokens / max(pairs, 1):.0f} prompt tokens per pair"
        )


def _report(label: str, run: dict, qrels: dict) -> None:
    means = evaluate(run, qrels, METRICS, conventions="beir").means
    print(f"  {label:22s} " + "  ".join(f"{m} {means[m]:.4f}" for m in METRICS))


if __name__ == "__main__":
    main()
