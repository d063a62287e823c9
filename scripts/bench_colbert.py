"""Benchmark ColBERT retrieval: IVF-PQ token candidates + exact MaxSim vs exhaustive MaxSim.

Encodes a collection with a ColBERT student into a late-interaction index
(``retrieval_kd.index.late_build``; resumable, kept under ``--out``), encodes the queries, and
prints a Markdown table: for each ``nprobe:candidates_per_token`` setting, recall@10 and
recall@100 of the two-stage search against exhaustive MaxSim over the same stored tokens,
nDCG@10 against the qrels, documents re-scored per query and queries/s; the exhaustive search
is the first row.

The student is a trained ColBERT checkpoint (``--student``) or, by default, a fresh ColBERT on
``sentence-transformers/all-MiniLM-L6-v2`` (resolved offline) with a seeded random 128-d
projection: the recall of candidate generation against exhaustive MaxSim does not need a
trained model (nDCG@10 of an untrained projection is low, and is only there for reference).

The token index defaults to ``--nlist 1024`` lists and a ``--train-size`` of 131,072 token
rows, below the repo's sizing rule for ~0.8M tokens (4 sqrt(T) = 3,600 lists, 500k sample),
so that its k-means trains in seconds on two cores; ``--nlist 0 --train-size 0`` applies the
rule.

Example (SciFact test queries, whole corpus)::

    OMP_NUM_THREADS=1 nice -n 10 python scripts/bench_colbert.py --data scifact --split test
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import time
from pathlib import Path

import faiss
import numpy as np


def parse_settings(text: str) -> list[tuple[int, ...]]:
    """``"4:16,16:64:256"`` -> ``[(4, 16), (16, 64, 256)]``.

    Each item is ``nprobe:candidates_per_token`` or ``nprobe:candidates_per_token:rescore_depth``.
    """
    return [tuple(int(v) for v in item.split(":")) for item in text.split(",")]


class FreshColBERT:
    """A ColBERT student as token encoders, with a hash that identifies its projection too."""

    def __init__(self, student: str | None, base: str, dim: int, seed: int, batch_size: int):
        import torch

        from retrieval_kd.retrieval import TokenEncoder
        from students.colbert import ColBERTStudent

        if student:
            encoder = TokenEncoder(student, batch_size=batch_size, device="cpu")
            self.student, self.hash, self.label = encoder.student, encoder.hash, student
        else:
            torch.manual_seed(seed)
            self.student = ColBERTStudent(base, dim=dim, batch_size=batch_size, device="cpu")
            self.student.model.eval()
            digest = hashlib.sha256(repr(self.student.describe()).encode())
            for tensor in self.student.model.state_dict().values():
                digest.update(tensor.detach().cpu().numpy().tobytes())
            self.hash = digest.hexdigest()[:16]
            self.label = f"{base} + fresh {dim}-d projection (seed {seed})"

    def passages(self, texts: list[str]) -> list[np.ndarray]:
        return [m.float().numpy() for m in self.student.encode_passages(texts).unpad()]

    def queries(self, texts: list[str]) -> list[np.ndarray]:
        return [m.float().numpy() for m in self.student.encode_queries(texts).unpad()]


def pick_docs(all_ids: list[str], qrels: dict, max_docs: int | None) -> list[str]:
    """The judged docs of the kept queries first, then others in corpus order, up to max_docs."""
    if not max_docs or max_docs >= len(all_ids):
        return all_ids
    judged = {d for q in qrels.values() for d in q}
    chosen = [d for d in all_ids if d in judged][:max_docs]
    rest = (d for d in all_ids if d not in judged)
    chosen += [d for _, d in zip(range(max_docs - len(chosen)), rest, strict=False)]
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="scifact", help="collection (short name or folder)")
    parser.add_argument("--split", default="test", help="split whose queries and qrels to use")
    parser.add_argument("--student", help="trained ColBERT checkpoint (default: fresh MiniLM)")
    parser.add_argument("--base", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--dim", type=int, default=128, help="projection of a fresh student")
    parser.add_argument("--max-docs", type=int, help="index at most this many docs")
    parser.add_argument("--max-queries", type=int, help="use at most this many queries")
    parser.add_argument(
        "--settings",
        default="1:16,4:16,8:32,16:64,32:128,64:256",
        help="nprobe:candidates_per_token pairs",
    )
    parser.add_argument("--index-type", default="ivfpq", help="FAISS type of the token index")
    parser.add_argument("--nlist", type=int, default=1024, help="0: the sizing rule")
    parser.add_argument("--train-size", type=int, default=131_072, help="0: the sizing rule")
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 1)))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=".cache/bench_colbert", help="parent of index folders")
    args = parser.parse_args(argv)

    import torch

    from evaluation.metrics import evaluate
    from retrieval_kd.data import load_dataset
    from retrieval_kd.index.late_build import build_late_interaction_index
    from retrieval_kd.index.late_report import late_interaction_report, late_report_markdown

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    dataset = load_dataset(args.data, args.split)
    query_ids = sorted(dataset.queries)[: args.max_queries]
    qrels = {q: dataset.qrels[q] for q in query_ids if q in dataset.qrels}
    doc_ids = pick_docs(dataset.corpus.ids, qrels, args.max_docs)
    kept = set(doc_ids)
    qrels = {q: {d: g for d, g in j.items() if d in kept} for q, j in qrels.items()}
    encoder = FreshColBERT(args.student, args.base, args.dim, args.seed, args.batch_size)
    sizing = {"nlist": args.nlist or None, "train_size": args.train_size or None}
    folder = Path(args.out) / f"{Path(args.data).name}-{len(doc_ids)}-{encoder.hash[:8]}"
    print(
        f"faiss {faiss.__version__}, torch {torch.__version__}, {args.threads} thread(s); "
        f"load average {', '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )
    print(f"student: {encoder.label}")
    print(f"{args.data}/{args.split}: {len(doc_ids)} docs, {len(query_ids)} queries -> {folder}")

    index = build_late_interaction_index(
        folder,
        doc_ids,
        dataset.corpus.texts,
        encoder.passages,
        chunk_size=args.chunk_size,
        index_type=args.index_type,
        student_hash=encoder.hash,
        seed=args.seed,
        **{k: v for k, v in sizing.items() if v},
    )
    build = index.manifest["build"]
    encode = build["encode_s"]
    print(
        f"index: {index.ntotal} docs, {index.ntokens} tokens ({build['tokens_per_doc']}/doc), "
        f"{index.manifest['factory']}, {index.size_bytes / 2**20:.1f} MiB on disk "
        f"(tokens.f16 {index.ntokens * index.dim * 2 / 2**20:.1f} MiB)"
    )
    print(
        f"build: encode {encode:.1f} s ({build['chunks_encoded']} chunks encoded, "
        f"{build['chunks_reused']} reused), train {build['train_s']:.1f} s, "
        f"add {build['add_s']:.1f} s, total {build['build_s']:.1f} s"
    )

    start = time.perf_counter()
    matrices = encoder.queries([dataset.queries[q] for q in query_ids])
    print(
        f"queries encoded in {time.perf_counter() - start:.1f} s "
        f"({np.mean([len(m) for m in matrices]):.0f} tokens each)"
    )

    def ndcg10(run: dict, judgements: dict) -> float:
        return evaluate(run, judgements, ["ndcg@10"]).means["ndcg@10"]

    rows = late_interaction_report(
        index,
        matrices,
        parse_settings(args.settings),
        ks=(10, 100),
        query_ids=query_ids,
        qrels=qrels,
        metric_fn=ndcg10,
    )
    print()
    print(late_report_markdown(rows), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
