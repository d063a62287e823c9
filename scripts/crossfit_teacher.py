"""A teacher trained here, scored out of fold: K teachers, each blind to the queries it scores.

A teacher fine-tuned on the training queries and then asked to score those same queries'
candidates has seen every one of them: it scores their judged positives from memory and pushes
down the very negatives it was trained against, so its scores say little beyond the labels. That
is the in-sample teacher of ``configs/teacher-bi-encoder-scifact.yaml``. Cross-fitting (the
out-of-fold predictions of stacking, Wolpert 1992) removes it: split the training queries into K
folds, train teacher k on the other K-1 folds with the same config, and let it score only fold
k's candidates. Every stored score then comes from a teacher that never saw that query, as at
test time, at the price of teachers trained on (K-1)/K of the queries.

Given an ``rkd train`` config of a teacher (its ``data.score_store`` holds the candidates of the
training queries, e.g. the run-scores store of an ``rkd distill`` run), this writes under
``--out``: ``fold-k/store`` (the training store of teacher k: the other folds' queries),
``fold-k/model`` (teacher k), ``fold-k/scores`` (fold k's candidates scored by teacher k),
``oof.trec`` (every query's out-of-fold scores) and ``manifest.json``; every step resumes. The
result is a teacher spec for any config: ``scores:<out>/oof.trec`` (z-score it in an ensemble,
e.g. ``ensemble:zscore:bm25*1+scores:<out>/oof.trec*1``).

Usage:
    python scripts/crossfit_teacher.py --config configs/teacher-bi-encoder-scifact.yaml \\
        --folds 2 --out runs/cand16/teacher-l6-cf2
"""

from __future__ import annotations

import argparse
import copy
import random
import time
from pathlib import Path
from typing import Any

TEACHER_KINDS = ("bi-encoder", "cross-encoder", "colbert")  # students that serve as teachers


def folds_of(query_ids: list[str], k: int, seed: int) -> list[list[str]]:
    """``k`` disjoint folds of ``query_ids`` (sorted, shuffled with ``seed``), sizes within 1."""
    shuffled = sorted(query_ids)
    random.Random(seed).shuffle(shuffled)
    return [sorted(shuffled[i::k]) for i in range(k)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="the teacher's rkd train config")
    parser.add_argument("--folds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0, help="which queries go to which fold")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    from retrieval_kd.data import load_dataset, write_run
    from retrieval_kd.errors import RKDError
    from retrieval_kd.manifest import measure, write_manifest
    from retrieval_kd.store import ScoreStore, score_candidates
    from retrieval_kd.training import train
    from retrieval_kd.training.config import as_config
    from teachers import build_teacher
    from teachers.run_scores import RunScoreTeacher

    if args.folds < 2:
        raise RKDError(f"--folds must be at least 2, got {args.folds}")
    base = as_config(args.config)
    kind = base.student.kind
    if kind not in TEACHER_KINDS:
        raise RKDError(f"a {base.student.kind!r} student cannot serve as a teacher here")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = ScoreStore(base.data.score_store)
    if source.manifest is None:
        raise RKDError(f"{base.data.score_store}: not a finished score store")
    dataset = load_dataset(base.data.collection, base.data.split)
    candidates = source.to_run()  # the candidates in their stored order and scores
    depth = max(len(docs) for docs in candidates.values())
    folds = folds_of(list(candidates), args.folds, args.seed)
    records: list[dict[str, Any]] = []
    oof: dict[str, dict[str, float]] = {}

    def into_store(scorer, run, folder):
        return score_candidates(
            scorer, dataset.queries, run, dataset.corpus.texts, folder, depth=depth,
            qrels=dataset.qrels,
        )  # fmt: skip

    start = time.perf_counter()
    for k, held_out in enumerate(folds):
        fold = out / f"fold-{k}"
        seen = set(held_out)
        train_run = {q: docs for q, docs in candidates.items() if q not in seen}
        with measure() as cost:
            # teacher k's training store: the other folds' candidates under their own scores
            store = into_store(RunScoreTeacher(train_run, "candidates"), train_run, fold / "store")
            config = copy.deepcopy(base)
            config.data.score_store = str(store.folder)
            config.training.output_dir = str(fold / "teacher")
            result = train(config)
            teacher = build_teacher(f"{kind}:{result.model_dir}")
            fold_run = {q: candidates[q] for q in held_out}
            scored = into_store(teacher, fold_run, fold / "scores")
        oof.update(scored.to_run())
        records.append(
            {
                "fold": k,
                "held_out_queries": len(held_out),
                "training_queries": len(train_run),
                "teacher": str(result.model_dir),
                "scores": str(scored.folder),
                "cost": cost,
            }
        )
        print(f"fold {k}: teacher on {len(train_run)} queries scored {len(held_out)} held out")
    write_run(oof, out / "oof.trec", tag="crossfit")
    write_manifest(
        out,
        {
            "stage": "crossfit-teacher",
            "config": str(args.config),
            "teacher_kind": kind,
            "folds": args.folds,
            "seed": args.seed,
            "candidates": str(base.data.score_store),
            "depth": depth,
            "queries": len(candidates),
            "per_fold": records,
            "wall_s": round(time.perf_counter() - start, 1),
            "teacher_spec": f"scores:{out / 'oof.trec'}",
        },
    )
    print(f"out-of-fold teacher: scores:{out / 'oof.trec'}")


if __name__ == "__main__":
    main()
