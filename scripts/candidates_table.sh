#!/usr/bin/env bash
# Issue 16's table: the demo job (SciFact train -> test, paraphrase-MiniLM-L3-v2, the offline
# BM25 + all-MiniLM-L6-v2 ensemble teacher) under three candidate sources (BM25, dense
# all-MiniLM-L6-v2, their RRF fusion), each with and without false-negative handling.
#
#   bash scripts/candidates_table.sh 42                 # every cell, seed 42
#   bash scripts/candidates_table.sh 43 rrf-fn1 bm25-fn0 # chosen cells, another seed
#   RECIPE=e3 bash scripts/candidates_table.sh 42 bm25-fn1  # a lever: 3 epochs at lr 5e-5
#   TEACHER=bi-encoder:runs/cand16/teacher-l6-s42/model TAG=l6t \
#     bash scripts/candidates_table.sh 42 bm25-fn1          # another teacher (folder ...-l6t-s42)
#   EXTRA="teacher.score_eval=false" TEACHER=... TAG=... bash scripts/candidates_table.sh 42 bm25-fn1
#                                                 # more --set keys (space-separated key=value)
#   python scripts/seed_table.py --data scifact --split test runs/cand16/<cell>-s42 ...
#
# Sized for 2 CPU cores: the demo's recipe with groups of 4 and 128-token training passages
# (192 at index time), no dev evaluation during training; the teacher is named explicitly
# (bm25, not `run`) so it is the same function of (query, passage) whatever the candidates.
# The false-negative rule drops every unjudged candidate the teacher scores above the judged
# positive (absolute_margin 0, chosen before any run); the InfoNCE baseline never reads the
# teacher, so its training is shared by the fn0 and fn1 cells (--reuse).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
seed=${1:?usage: candidates_table.sh SEED [CELL...]}
shift
cells=("$@")
[ ${#cells[@]} -gt 0 ] || cells=(bm25-fn0 bm25-fn1 dense-fn0 dense-fn1 rrf-fn0 rrf-fn1)
dense='"dense:sentence-transformers/all-MiniLM-L6-v2"'
common=(
  --set "groups.size=4" --set "groups.mixed_top=2" --set "groups.depth=29"
  --set "student.passage_max_length=128" --set "index.max_length=192"
  --set "evaluation.every_steps=null" --set "training.save_steps=16"
  --set "teacher.model=ensemble:zscore:bm25*1+bi-encoder:sentence-transformers/all-MiniLM-L6-v2*1"
  --set "teacher.fallbacks=[]" --set "training.seed=$seed"
)
recipe=()
tag=""
case ${RECIPE:-} in
  "") ;;
  e3) recipe=(--set "training.epochs=3" --set "training.learning_rate=5.0e-5"); tag=-e3 ;;
  *) echo "unknown RECIPE $RECIPE" >&2; exit 2 ;;
esac
if [ -n "${TEACHER:-}" ]; then
  recipe+=(--set "teacher.model=$TEACHER")
  tag="$tag-${TAG:?TAG names the folder of a run with TEACHER}"
fi
for setting in ${EXTRA:-}; do recipe+=(--set "$setting"); done
previous=""
for cell in "${cells[@]}"; do
  source_name=${cell%-fn*}
  case $source_name in
    bm25) sources="[bm25]" ;;
    dense) sources="[$dense]" ;;
    rrf) sources="[bm25, $dense]" ;;
    *) echo "unknown cell $cell" >&2; exit 2 ;;
  esac
  fn=()
  if [ "${cell##*-}" = fn1 ]; then
    fn=(--set "groups.false_negatives={action: drop, absolute_margin: 0.0}"
        --set "baseline.groups={false_negatives: null}")
  fi
  out=runs/cand16/$cell$tag-s$seed
  reuse=()
  if [ -n "${REUSE:-}" ]; then reuse=(--reuse "$REUSE")  # e.g. another seed's teacher scores
  elif [ -n "$previous" ]; then reuse=(--reuse "$previous")
  elif [ -d "runs/cand16/$cell-s42" ]; then reuse=(--reuse "runs/cand16/$cell-s42"); fi
  start=$(date +%s)
  .venv/bin/rkd distill --config configs/demo-scifact.yaml "${common[@]}" "${fn[@]}" \
    --set "candidates.sources=$sources" --set "candidates.fusion=rrf" \
    --set "output_dir=$out" "${recipe[@]}" "${reuse[@]}"
  echo "$cell$tag seed $seed: $(( $(date +%s) - start )) s" | tee -a runs/cand16/times.txt
  previous=$out
done
