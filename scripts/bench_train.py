"""Training throughput: our DistillTrainer vs sentence-transformers' own trainer, same batches.

Both arms train the same student (default: paraphrase-MiniLM-L3-v2, resolved offline) for the same
steps on the same groups in the same order (query, positive, K-1 negatives; teacher scores from
BM25), with the same objective: listwise KL between softmaxes of dot-product scores and of teacher
scores at temperature 1 (our ``{"kl": 1.0}`` vs ``DistillKLDivLoss``), AdamW, fp32, same lr and
max length. Each arm runs in its own process so its peak memory is its own; steps after the first
are timed (the first pays for allocations and lazy initialisation).

Usage:
    RKD_DATA_DIR=../shared/data python scripts/bench_train.py --queries 48 --batch-size 8 \
        --group-size 4 --max-length 128
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def prepare(args: argparse.Namespace) -> Path:
    """A score store of BM25 scores for the first ``--queries`` train queries, and its groups."""
    from retrieval_kd.candidates import bm25_candidates
    from retrieval_kd.data import load_dataset
    from retrieval_kd.store import ScoredQuery, ScoreStore, ShardWriter
    from retrieval_kd.training import GroupDataset, GroupSampler

    out = Path(args.out)
    store = out / "store"
    dataset = load_dataset(args.data, "train")
    queries = dict(sorted(dataset.queries.items())[: args.queries])
    if not store.is_dir():
        run, _ = bm25_candidates(dataset.corpus, queries, 30)
        rows = []
        for qid in queries:
            scored = dict(run[qid])
            for doc in dataset.qrels[qid]:  # the judged positive, scored above BM25's best
                scored[doc] = max(scored.values()) + 1.0
            docs = sorted(scored, key=lambda d: -scored[d])
            rows.append(ScoredQuery(qid, docs, np.array([scored[d] for d in docs], np.float32)))
        ShardWriter(store).write(rows)
    groups = GroupDataset(
        ScoreStore(store),
        dataset.queries,
        dataset.corpus,
        GroupSampler(size=args.group_size, strategy="top", depth=args.group_size + 5),
        dataset.qrels,
    )
    with open(out / "groups.jsonl", "w", encoding="utf-8") as handle:
        for i in range(len(groups)):
            item = groups[i]
            record = {
                "query": item["query"],
                "passages": item["passages"],
                "label": item["teacher_scores"].tolist(),
            }
            handle.write(json.dumps(record) + "\n")
    return store


class StepTimer:
    """A TrainerCallback recording the wall time at the end of every optimizer step."""

    def __new__(cls) -> Any:
        from transformers import TrainerCallback

        class _Timer(TrainerCallback):
            def __init__(self) -> None:
                self.times: list[float] = []

            def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
                self.times.append(time.perf_counter())

        return _Timer()


def _peak_memory_mb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _report(arm: str, timer: Any, args: argparse.Namespace, loss: float) -> dict[str, Any]:
    times = timer.times
    timed_steps = len(times) - 1
    seconds = times[-1] - times[0]
    return {
        "arm": arm,
        "steps": len(times),
        "examples_per_s": round(timed_steps * args.batch_size / seconds, 3),
        "s_per_step": round(seconds / timed_steps, 3),
        "peak_memory_mb": round(_peak_memory_mb(), 1),
        "train_loss": round(loss, 4),
    }


def run_ours(args: argparse.Namespace) -> dict[str, Any]:
    import torch
    from transformers import TrainingArguments

    from retrieval_kd.data import load_dataset
    from retrieval_kd.losses import build_loss
    from retrieval_kd.store import ScoreStore
    from retrieval_kd.training import DistillTrainer, GroupDataset, GroupSampler
    from students.bi_encoder import BiEncoderStudent

    torch.manual_seed(0)
    dataset = load_dataset(args.data, "train")
    groups = GroupDataset(
        ScoreStore(Path(args.out) / "store"),
        dataset.queries,
        dataset.corpus,
        GroupSampler(size=args.group_size, strategy="top", depth=args.group_size + 5),
        dataset.qrels,
    )
    length = args.max_length
    student = BiEncoderStudent(
        args.model, similarity="dot", query_max_length=length, passage_max_length=length
    )
    timer = StepTimer()
    trainer = DistillTrainer(
        student=student,
        group_loss=build_loss({"kl": 1.0}),
        args=TrainingArguments(**_common_args(args, "ours"), train_sampling_strategy="sequential"),
        train_dataset=groups,
        callbacks=[timer],
    )
    output = trainer.train()
    return _report("retrieval_kd DistillTrainer", timer, args, output.training_loss)


def run_sentence_transformers(args: argparse.Namespace) -> dict[str, Any]:
    import datasets
    import torch
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss

    from retrieval_kd.models import resolve_model

    class SequentialBatchSampler(DefaultBatchSampler):
        """Batches in dataset order, as the other arm reads them."""

        def __iter__(self):  # noqa: ANN204
            n = len(self.sampler)  # BatchSampler keeps the dataset as its sampler
            for start in range(0, n, self.batch_size):
                if self.drop_last and start + self.batch_size > n:
                    return
                yield list(range(start, min(start + self.batch_size, n)))

    torch.manual_seed(0)
    rows = [json.loads(line) for line in open(Path(args.out) / "groups.jsonl", encoding="utf-8")]
    columns: dict[str, list[Any]] = {"query": [r["query"] for r in rows]}
    columns["positive"] = [r["passages"][0] for r in rows]
    for i in range(1, args.group_size):
        columns[f"negative_{i}"] = [r["passages"][i] for r in rows]
    columns["label"] = [r["label"] for r in rows]
    train_dataset = datasets.Dataset.from_dict(columns)
    model = SentenceTransformer(str(resolve_model(args.model).path), device=None)
    model.max_seq_length = args.max_length
    timer = StepTimer()
    trainer = SentenceTransformerTrainer(
        model=model,
        args=SentenceTransformerTrainingArguments(
            **_common_args(args, "st"), batch_sampler=SequentialBatchSampler
        ),
        train_dataset=train_dataset,
        loss=DistillKLDivLoss(model),
        callbacks=[timer],
    )
    output = trainer.train()
    return _report("sentence-transformers + DistillKLDivLoss", timer, args, output.training_loss)


def _common_args(args: argparse.Namespace, arm: str) -> dict[str, Any]:
    return dict(
        output_dir=str(Path(args.out) / arm),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=5e-5,
        warmup_steps=0,
        save_strategy="no",
        report_to="none",
        logging_steps=1,
        disable_tqdm=True,
        seed=0,
        dataloader_pin_memory=False,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="scifact")
    parser.add_argument("--model", default="sentence-transformers/paraphrase-MiniLM-L3-v2")
    parser.add_argument("--queries", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=None, help="default: queries // batch")
    parser.add_argument("--out", default="runs/bench_train")
    parser.add_argument("--arm", choices=["ours", "st"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.steps = args.steps or args.queries // args.batch_size
    if args.arm is not None:  # child process: one arm, JSON on the last line
        result = run_ours(args) if args.arm == "ours" else run_sentence_transformers(args)
        print(json.dumps(result))
        return
    Path(args.out).mkdir(parents=True, exist_ok=True)
    prepare(args)
    results = {}
    for arm in ("ours", "st"):
        command = [sys.executable, __file__, *sys.argv[1:], "--arm", arm]
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ})
        if done.returncode != 0:
            sys.exit(f"arm {arm} failed:\n{done.stderr[-3000:]}")
        results[arm] = json.loads(done.stdout.strip().splitlines()[-1])
    print(
        f"model {args.model}, {args.steps} steps of {args.batch_size} queries x "
        f"{args.group_size} passages, max length {args.max_length}"
    )
    print(f"{'trainer':45s} {'examples/s':>10s} {'s/step':>8s} {'peak MB':>9s} {'loss':>8s}")
    for r in results.values():
        print(
            f"{r['arm']:45s} {r['examples_per_s']:10.3f} {r['s_per_step']:8.3f} "
            f"{r['peak_memory_mb']:9.1f} {r['train_loss']:8.4f}"
        )
    ratio = results["ours"]["examples_per_s"] / results["st"]["examples_per_s"]
    print(f"speed ratio ours / sentence-transformers: {ratio:.2f}x (target >= 1.0x)")


if __name__ == "__main__":
    main()
