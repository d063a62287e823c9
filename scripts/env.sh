# Sourced by the demo and test scripts: where the data and caches live.
# RKD_DATA_DIR: the folder of real collections (scifact, nfcorpus, ...); ../shared/data by default.
if [ -z "${RKD_DATA_DIR:-}" ] && [ -d ../shared/data ]; then
  RKD_DATA_DIR="$(cd ../shared/data && pwd)"
fi
export RKD_DATA_DIR
export RKD_CACHE_DIR=${RKD_CACHE_DIR:-$HOME/.cache/retrieval_kd}
export HF_HUB_OFFLINE=${HF_HUB_OFFLINE:-0}
