#!/usr/bin/env bash
# The main job, end to end on SciFact: BM25 candidates -> teacher scores (a cross-encoder when
# one can be had, else the BM25 + MiniLM-L6 ensemble) -> Margin-MSE + KL distillation into
# paraphrase-MiniLM-L3-v2 -> exact FAISS index -> search -> report (runs/demo-scifact/report/).
# Extra arguments go to `rkd distill`, e.g. `bash scripts/demo.sh --quick` for a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
.venv/bin/rkd distill --config configs/demo-scifact.yaml "$@"
