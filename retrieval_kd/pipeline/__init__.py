"""``rkd distill``: the whole chain from one YAML config, stage by stage, resumable."""

from retrieval_kd.pipeline.config import DistillConfig, load_distill_config
from retrieval_kd.pipeline.distill import DistillRun

__all__ = ["DistillConfig", "DistillRun", "load_distill_config"]
