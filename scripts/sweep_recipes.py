"""Recipe sweep: train variants of the demo's student from stored scores, search SciFact test.

Each variant trains the demo's student (paraphrase-MiniLM-L3-v2, cosine, 64/192 tokens, batch 16,
groups of 8) on every SciFact training query from a score store, with no dev hold-out and no
best-checkpoint choice, then writes a TREC run (exact cosine search over all 5,183 docs, top 100)
to OUT_DIR. It needs torch, transformers and sentence-transformers only (no FAISS, no ranx), so it
runs on a bare GPU machine; evaluate the runs where ranx is installed:

    SWEEP_STORES=<dir holding teacher/ and bm25/ score stores> SWEEP_STUDENT=<student folder> \
        python scripts/sweep_recipes.py OUT_DIR [name-prefix,...]      # ROUND=2 for round two
    rkd evaluate --run OUT_DIR/*.trec --qrels scifact/test --conventions beir

``teacher/`` is the demo's ``teacher-train/store`` (BM25 + MiniLM-L6 z-score ensemble, BM25
top 30), ``bm25/`` its ``run-scores-train/store`` (the baseline's negatives). The README's recipe
table came from these two rounds on one H100 (about 9 s per one-epoch variant).
"""

import copy
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

from retrieval_kd.data import load_dataset, write_run
from retrieval_kd.retrieval import StudentEncoder
from retrieval_kd.training import train

if len(sys.argv) < 2 or not {"SWEEP_STORES", "SWEEP_STUDENT"} <= set(os.environ):
    sys.exit(__doc__)
OUT = Path(sys.argv[1])
ONLY = sys.argv[2].split(",") if len(sys.argv) > 2 else None
STUDENT = os.environ["SWEEP_STUDENT"]
TEACHER, BM25 = (str(Path(os.environ["SWEEP_STORES"]) / s) for s in ("teacher", "bm25"))
NCE = {"info_nce": {"weight": 1.0, "temperature": 0.05, "in_batch": True}}
DEMO = {
    "margin_mse": {"weight": 0.1, "temperature": 0.05},
    "kl": {"weight": 1.0, "temperature": 0.05, "teacher_temperature": 1.0, "rescale": False},
    **NCE,
}
MIXED = {"size": 8, "strategy": "mixed", "mixed_top": 3, "depth": 29, "short_queries": "skip"}
TOP = {"size": 8, "strategy": "top", "depth": 29, "short_queries": "skip"}


def kl(t: float = 1.0, w: float = 1.0) -> dict:
    return {"weight": w, "temperature": 0.05, "teacher_temperature": t, "rescale": False}


VARIANTS: dict[str, dict] = {}
for seed in (42, 43, 44):
    VARIANTS[f"base-mixed-s{seed}"] = dict(store=BM25, loss=NCE, groups=MIXED, seed=seed)
    VARIANTS[f"base-top-s{seed}"] = dict(store=BM25, loss=NCE, groups=TOP, seed=seed)
    VARIANTS[f"dist-demo-s{seed}"] = dict(store=TEACHER, loss=DEMO, groups=MIXED, seed=seed)
    VARIANTS[f"dist-trust1-s{seed}"] = dict(
        store=TEACHER, loss=DEMO, groups={**MIXED, "trust_labels": 1.0}, seed=seed
    )
VARIANTS.update(
    {
        "dist-trust1-top-s42": dict(
            store=TEACHER, loss=DEMO, groups={**TOP, "trust_labels": 1.0}, seed=42
        ),
        "dist-trust1-T2-s42": dict(
            store=TEACHER,
            loss={**DEMO, "kl": kl(2.0)},
            groups={**MIXED, "trust_labels": 1.0},
            seed=42,
        ),
        "dist-trust1-nomm-s42": dict(
            store=TEACHER,
            loss={"kl": kl(), **NCE},
            groups={**MIXED, "trust_labels": 1.0},
            seed=42,
        ),
        "dist-trust1-kl2-s42": dict(
            store=TEACHER,
            loss={**DEMO, "kl": kl(1.0, 2.0)},
            groups={**MIXED, "trust_labels": 1.0},
            seed=42,
        ),
        "dist-trust1-ep2-s42": dict(
            store=TEACHER, loss=DEMO, groups={**MIXED, "trust_labels": 1.0}, seed=42, epochs=2
        ),
        "base-mixed-ep2-s42": dict(store=BM25, loss=NCE, groups=MIXED, seed=42, epochs=2),
        "dist-trust0-s42": dict(
            store=TEACHER, loss=DEMO, groups={**MIXED, "trust_labels": 0.0}, seed=42
        ),
        "dist-trust3-s42": dict(
            store=TEACHER, loss=DEMO, groups={**MIXED, "trust_labels": 3.0}, seed=42
        ),
    }
)

if os.environ.get("ROUND") == "2":
    TRUST = {**MIXED, "trust_labels": 1.0}
    R2: dict[str, dict] = {}
    for seed in (42, 43, 44):
        R2[f"dist-trust1-ep2-s{seed}"] = dict(
            store=TEACHER, loss=DEMO, groups=TRUST, seed=seed, epochs=2
        )
        R2[f"dist-demo-ep2-s{seed}"] = dict(
            store=TEACHER, loss=DEMO, groups=MIXED, seed=seed, epochs=2
        )
        R2[f"base-mixed-ep2-s{seed}"] = dict(
            store=BM25, loss=NCE, groups=MIXED, seed=seed, epochs=2
        )
    for seed in (42, 43):
        R2[f"dist-trust1-lr1e4-s{seed}"] = dict(
            store=TEACHER, loss=DEMO, groups=TRUST, seed=seed, lr=1e-4
        )
        R2[f"dist-demo-lr1e4-s{seed}"] = dict(
            store=TEACHER, loss=DEMO, groups=MIXED, seed=seed, lr=1e-4
        )
        R2[f"base-mixed-lr1e4-s{seed}"] = dict(
            store=BM25, loss=NCE, groups=MIXED, seed=seed, lr=1e-4
        )
    R2["dist-trust1-lr2e4-s42"] = dict(store=TEACHER, loss=DEMO, groups=TRUST, seed=42, lr=2e-4)
    R2["base-mixed-lr2e4-s42"] = dict(store=BM25, loss=NCE, groups=MIXED, seed=42, lr=2e-4)
    R2["dist-trust1-ep3-s42"] = dict(store=TEACHER, loss=DEMO, groups=TRUST, seed=42, epochs=3)
    R2["base-mixed-ep3-s42"] = dict(store=BM25, loss=NCE, groups=MIXED, seed=42, epochs=3)
    VARIANTS = R2


def config(name: str, v: dict) -> dict:
    return {
        "data": {"collection": "scifact", "score_store": v["store"], "split": "train"},
        "student": {
            "model": STUDENT,
            "pooling": "mean",
            "similarity": "cosine",
            "query_max_length": 64,
            "passage_max_length": 192,
        },
        "groups": copy.deepcopy(v["groups"]),
        "loss": copy.deepcopy(v["loss"]),
        "training": {
            "output_dir": str(OUT / "train" / name),
            "epochs": v.get("epochs", 1),
            "batch_size": 16,
            "learning_rate": v.get("lr", 5e-5),
            "warmup": 0.1,
            "logging_steps": 5,
            "seed": v["seed"],
            "save_total_limit": 1,
            "max_steps": int(os.environ.get("SMOKE_STEPS", "-1")),
        },
    }


def main() -> None:
    test = load_dataset("scifact", "test")
    doc_ids = list(test.corpus.ids)[: int(os.environ.get("SMOKE_DOCS", "100000000"))]
    texts = test.corpus.texts(doc_ids)
    qids = list(test.queries)
    qtexts = [test.queries[q] for q in qids]
    OUT.mkdir(parents=True, exist_ok=True)
    log = {}
    names = [n for n in VARIANTS if ONLY is None or any(n.startswith(o) for o in ONLY)]
    for name in names:
        start = time.perf_counter()
        try:
            result = train(config(name, VARIANTS[name]))
            enc = StudentEncoder(str(result.model_dir), batch_size=256)
            enc.model.float()
            p = torch.from_numpy(enc.encode_passages(texts))
            q = torch.from_numpy(enc.encode_queries(qtexts))
            p = torch.nn.functional.normalize(p, dim=-1)
            q = torch.nn.functional.normalize(q, dim=-1)
            scores, idx = (q @ p.T).topk(min(100, len(doc_ids)), dim=-1)
            run = {
                qid: {
                    doc_ids[j]: s for j, s in zip(idx[i].tolist(), scores[i].tolist(), strict=True)
                }
                for i, qid in enumerate(qids)
            }
            write_run(run, OUT / f"{name}.trec", tag=name)
            log[name] = {"s": round(time.perf_counter() - start, 1), "steps": result.global_step}
            print(f"DONE {name} {log[name]}", flush=True)
        except Exception:
            traceback.print_exc()
            log[name] = {"error": traceback.format_exc()[-500:]}
            if name == names[0]:
                break
        (OUT / "log.json").write_text(json.dumps(log, indent=1))


if __name__ == "__main__":
    main()
