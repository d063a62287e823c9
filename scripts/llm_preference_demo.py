"""LLM pairwise and listwise preferences on a SciFact slice: teachers, targets, students, nDCG.

Runs offline (the ``cpu`` profile of the configs: SmolLM2-135M-Instruct) or on a GPU (the
``gpu`` profile: 7B rerankers). Steps, each writing an artefact folder under ``--out``:

1. BM25 top-``depth`` candidates for the first ``--queries`` test queries (by id);
2. pairwise teacher -> preference store ``pairwise/`` -> Bradley-Terry score store ``pairwise-bt/``;
3. listwise teachers (sliding generation, FIRST) -> ``listwise-<method>/`` -> ``-ranks/`` scores;
4. students trained on the targets of the first half of the queries and evaluated, as
   re-rankers of the same BM25 candidates, on the second half: the LLM under a pointwise prompt
   (instruction distillation: ``distill_preferences``, RankNet on the stored P(i>j)), and
   bi-encoders trained by the project trainer (``retrieval_kd.training.train``) on score stores
   derived from the first half's targets (soft RankNet on the Bradley-Terry scores; ListMLE on
   each listwise order);
5. a table of nDCG@10 and the LLM cost per query (forward passes, tokens in/out, seconds).

Example:
    python scripts/llm_preference_demo.py --queries 10 --threads 1
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from evaluation import evaluate
from retrieval_kd.candidates.bm25 import bm25_candidates
from retrieval_kd.data import load_dataset
from retrieval_kd.llm.loading import load_causal_lm
from retrieval_kd.store import to_run
from retrieval_kd.store.preferences import collect_preferences, preferences_to_scores
from retrieval_kd.training import train
from students.instruction_distill import PointwiseLLMStudent, distill_preferences
from teachers.llm_listwise import LLMListwiseTeacher
from teachers.llm_pairwise import LLMPairwiseTeacher

REPO = Path(__file__).resolve().parents[1]
LOAD_KEYS = ("model", "dtype")


def ndcg(run: dict, qrels: dict, qids: list[str]) -> float:
    sub_run = {q: run.get(q, {}) for q in qids}
    return evaluate(sub_run, {q: qrels[q] for q in qids}, ["ndcg@10"]).means["ndcg@10"]


def rerank(score_fn: Any, qids: list[str], queries: dict, run: dict, texts: Any) -> dict:
    """Re-rank each query's candidates with ``score_fn(query, passages) -> scores``."""
    out = {}
    for q in qids:
        docs = sorted(run[q], key=lambda d: -run[q][d])
        with torch.no_grad():
            scores = score_fn(queries[q], texts(docs))
        out[q] = dict(zip(docs, [float(s) for s in scores], strict=True))
    return out


def profile_settings(base: dict, profile: dict) -> tuple[dict, dict]:
    """(model-loading settings, teacher settings) of base + profile overrides."""
    merged = {**base, **profile}
    return {k: merged.pop(k) for k in LOAD_KEYS if k in merged}, merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairwise", default=str(REPO / "configs/llm-pairwise-scifact.yaml"))
    parser.add_argument("--listwise", default=str(REPO / "configs/llm-listwise-scifact.yaml"))
    parser.add_argument("--profile", choices=["cpu", "gpu"], default=None)
    parser.add_argument("--queries", type=int, default=None, help="override data.queries")
    parser.add_argument("--out", default=None, help="default: $RKD_CACHE_DIR/llm-preference-demo")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--no-students", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    profile = args.profile or ("gpu" if torch.cuda.is_available() else "cpu")
    pw_cfg = yaml.safe_load(Path(args.pairwise).read_text())
    lw_cfg = yaml.safe_load(Path(args.listwise).read_text())
    cache = Path(os.environ.get("RKD_CACHE_DIR", Path.home() / ".cache/retrieval_kd"))
    out = Path(args.out) if args.out else cache / "llm-preference-demo" / profile
    n = args.queries or pw_cfg["data"]["queries"]
    depth = pw_cfg["candidates"]["depth"]

    ds = load_dataset(pw_cfg["data"]["dataset"], pw_cfg["data"]["split"])
    qids = sorted(ds.queries)[:n]
    queries = {q: ds.queries[q] for q in qids}
    train_ids, eval_ids = qids[: n // 2], qids[n // 2 :]
    run, bm25_cost = bm25_candidates(ds.corpus, queries, depth)
    source = {"name": "bm25", "dataset": ds.name, "split": ds.split, **bm25_cost}
    texts = ds.corpus.texts
    rows: list[dict[str, Any]] = [
        {"name": "BM25", "all": ndcg(run, ds.qrels, qids), "eval": ndcg(run, ds.qrels, eval_ids)}
    ]
    models: dict[tuple, Any] = {}

    def lm(load: dict) -> Any:
        key = tuple(sorted(load.items()))
        if key not in models:
            models[key] = load_causal_lm(load["model"], dtype=load.get("dtype"))
        return models[key]

    def teacher_row(name: str, store: Any, scores: Any) -> dict:
        cost = store.manifest["cost"]["per_query"]
        counts = store.manifest["counts"]
        return {
            "name": name,
            "all": ndcg(to_run(scores), ds.qrels, qids),
            "eval": ndcg(to_run(scores), ds.qrels, eval_ids),
            **{k: cost[k] for k in ("forward_passes", "tokens_in", "tokens_out", "wall_s")},
            "skipped": counts["skipped"],
            "repairs": counts["repairs"],
        }

    load, settings = profile_settings(pw_cfg["teacher"], pw_cfg["profiles"][profile])
    pairwise = LLMPairwiseTeacher(lm(load), **settings)
    pw_store = collect_preferences(
        pairwise, queries, run, texts, out / "pairwise", depth=depth, candidate_source=source
    )
    pw_scores = preferences_to_scores(pw_store, out / "pairwise-bt", **pw_cfg["targets"])
    rows.append(teacher_row(f"LLM pairwise ({settings['pairs']}) + BT", pw_store, pw_scores))
    lw_stores = {}
    for method, base in lw_cfg["teachers"].items():
        load, settings = profile_settings(base, lw_cfg["profiles"][profile][method])
        teacher = LLMListwiseTeacher(lm(load), **settings)
        store = collect_preferences(
            teacher, queries, run, texts, out / f"listwise-{method}", depth=depth,
            candidate_source=source,
        )  # fmt: skip
        scores = preferences_to_scores(store, out / f"listwise-{method}-ranks", **lw_cfg["targets"])
        label = f"LLM listwise {method} (w={settings['window']}, s={settings['stride']})"
        rows.append(teacher_row(label, store, scores))
        lw_stores[method] = store

    if not args.no_students:
        rows += train_students(
            pw_cfg, lw_cfg, profile, pw_store, lw_stores, run, ds, queries, train_ids, eval_ids, out
        )
    print_table(rows, profile, n, len(eval_ids), depth, models)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(rows, indent=2))
    print(f"\nartefacts and results.json under {out}")


def train_students(
    pw_cfg: dict,
    lw_cfg: dict,
    profile: str,
    pw_store: Any,
    lw_stores: dict,
    run: dict,
    ds: Any,
    queries: dict,
    train_ids: list[str],
    eval_ids: list[str],
    out: Path,
) -> list[dict]:
    """Train each student on the first half's targets; evaluate on the second half."""
    from students.bi_encoder import BiEncoderStudent

    texts = ds.corpus.texts
    rows: list[dict] = []

    def measure(name: str, score_fn: Any, train_s: float | None = None) -> None:
        start = time.perf_counter()
        student_run = rerank(score_fn, eval_ids, queries, run, texts)
        rerank_s = round(time.perf_counter() - start, 1)
        ndcg_eval = ndcg(student_run, ds.qrels, eval_ids)
        rows.append({"name": name, "eval": ndcg_eval, "train_s": train_s, "rerank_s": rerank_s})

    keep = set(train_ids)
    train_pairs = [r for r in pw_store if r.query_id in keep]
    cfg = pw_cfg["students"]["pointwise_llm"]
    load, _ = profile_settings(pw_cfg["teacher"], pw_cfg["profiles"][profile])
    llm = PointwiseLLMStudent(
        load_causal_lm(load["model"], dtype="float32" if profile == "cpu" else load.get("dtype")),
        trainable_layers=cfg["trainable_layers"],
        max_length=cfg["max_length"],
    )
    measure("pointwise LLM student, zero-shot", lambda q, p: llm.score([q], [p])[0])
    start = time.perf_counter()
    distill_preferences(
        llm, train_pairs, queries, texts, loss="ranknet_pairs", steps=cfg["steps"], lr=cfg["lr"],
        batch_queries=cfg["batch_queries"],
    )  # fmt: skip
    seconds = round(time.perf_counter() - start, 1)
    label = "  + instruction distillation (RankNet on P(i>j))"
    measure(label, lambda q, p: llm.score([q], [p])[0], seconds)

    # bi-encoders: the project trainer on score stores derived from the first half's targets
    sources = [("pairwise", "pairwise-bt", pw_cfg, pw_store)]
    sources += [(f"listwise {m}", f"listwise-{m}-ranks", lw_cfg, s) for m, s in lw_stores.items()]
    for i, (name, folder, cfg, store) in enumerate(sources):
        bi_cfg = cfg["students"]["bi_encoder"]
        if i == 0:
            before = BiEncoderStudent(
                bi_cfg["model"], passage_max_length=bi_cfg["passage_max_length"]
            )
            label = f"bi-encoder {bi_cfg['model'].split('/')[-1]}, before training"
            measure(label, lambda q, p, bi=before: bi.score_groups([q], [p])[0])
        derived = preferences_to_scores(
            store, out / f"{folder}-train", query_ids=train_ids, **cfg["targets"]
        )
        start = time.perf_counter()
        result = train(bi_encoder_config(bi_cfg, ds, derived, out / f"student-{folder}"))
        seconds = round(time.perf_counter() - start, 1)
        trained = BiEncoderStudent(str(result.model_dir))
        label = f"  + trainer, {', '.join(bi_cfg['loss'])} on {name} targets"
        measure(label, lambda q, p, bi=trained: bi.score_groups([q], [p])[0], seconds)
    return rows


def bi_encoder_config(bi_cfg: dict, ds: Any, store: Any, out: Path) -> dict:
    """A ``retrieval_kd.training.train`` config: the student on a derived score store."""
    k = min(len(row.doc_ids) for row in store)  # groups: every stored candidate of a query
    return {
        "data": {
            "collection": ds.name,
            "split": ds.split,
            "score_store": str(store.folder),
            "positives": "teacher",  # no qrels: the LLM's top-1 is the positive
        },
        "student": {"model": bi_cfg["model"], "passage_max_length": bi_cfg["passage_max_length"]},
        "loss": bi_cfg["loss"],
        "groups": {"size": k, "depth": k},
        "training": {
            "output_dir": str(out),
            "max_steps": bi_cfg["steps"],
            "batch_size": bi_cfg["batch_size"],
            "learning_rate": bi_cfg["lr"],
            "use_cpu": not torch.cuda.is_available(),
            "logging_steps": 5,
        },
    }


def print_table(rows: list[dict], profile: str, n: int, n_eval: int, depth: int, models) -> None:
    names = sorted({dict(key)["model"] for key in models})
    print(f"\nSciFact test, first {n} queries by id, BM25 top-{depth}; profile {profile}; "
          f"LLM(s): {', '.join(names)}")  # fmt: skip
    print(f"students: trained on the targets of the first {n - n_eval} queries, evaluated on the "
          f"other {n_eval} (re-ranking the same BM25 candidates)\n")  # fmt: skip
    head = f"{'method':<56} {'nDCG@10':>8} {'eval':>6}  {'fwd/q':>6} {'tok_in/q':>8} "
    print(head + f"{'tok_out/q':>9} {'s/q':>6}  notes")
    for row in rows:
        all_ = f"{row['all']:.4f}" if "all" in row else "-"
        line = f"{row['name']:<56} {all_:>8} {row['eval']:>6.4f}  "
        if "forward_passes" in row:
            line += (f"{row['forward_passes']:>6.1f} {row['tokens_in']:>8.0f} "
                     f"{row['tokens_out']:>9.1f} {row['wall_s']:>6.2f}  ")  # fmt: skip
            fixes = {k: v for k, v in row["repairs"].items() if v}
            line += f"skipped={row['skipped']} repairs={fixes or 'none'}"
        elif "rerank_s" in row:
            train = f"train {row['train_s']:.0f} s, " if row["train_s"] is not None else ""
            line += f"{'':>33}  {train}re-rank {row['rerank_s']:.0f} s"
        print(line)


if __name__ == "__main__":
    main()
