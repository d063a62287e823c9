#!/usr/bin/env bash
# The main job, end to end on SciFact, as far as the pipeline exists in this version:
# BM25 candidates for the test queries -> evaluation (nDCG@10, MRR@10, Recall@100).
# (Teacher scoring, distillation into a student, FAISS indexing and the report join this script
# as `rkd distill --config configs/demo-scifact.yaml` when they land.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
out=${RKD_RUN_DIR:-runs/demo-scifact}
mkdir -p "$out"
.venv/bin/rkd candidates --data scifact --split test --k 100 --out "$out/bm25.trec"
.venv/bin/rkd evaluate --run "$out/bm25.trec" --qrels scifact/test \
  --metrics ndcg@10,mrr@10,recall@100 --conventions beir --per-query "$out/per_query.csv"
