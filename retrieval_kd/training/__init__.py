"""Training glue: the config, the group dataset, the distillation trainer and ``train()``.

Public API:

- ``train(config) -> TrainResult``: YAML path, plain data or :class:`TrainConfig`.
- ``load_config(path)``, ``config_from_dict(raw)``: strict config reading.
- ``GroupDataset``, ``GroupSampler``, ``collate_groups``: score store + texts -> groups.
- ``DistillTrainer``, ``StudentModule``: the Hugging Face Trainer for distillation.
- ``register_student(kind, builder)``, ``build_student(config)``: student kinds by name.
"""

from __future__ import annotations

from retrieval_kd.training.api import TrainResult, train
from retrieval_kd.training.config import (
    DataConfig,
    EvalConfig,
    GroupConfig,
    StudentConfig,
    TrainConfig,
    TrainingConfig,
    config_from_dict,
    load_config,
    split_loss_spec,
)
from retrieval_kd.training.groups import GroupDataset, GroupSampler, collate_groups
from retrieval_kd.training.students import build_student, register_student, student_kinds
from retrieval_kd.training.trainer import DistillTrainer, StudentModule

__all__ = [
    "DataConfig",
    "DistillTrainer",
    "EvalConfig",
    "GroupConfig",
    "GroupDataset",
    "GroupSampler",
    "StudentConfig",
    "StudentModule",
    "TrainConfig",
    "TrainResult",
    "TrainingConfig",
    "build_student",
    "collate_groups",
    "config_from_dict",
    "load_config",
    "register_student",
    "split_loss_spec",
    "student_kinds",
    "train",
]
