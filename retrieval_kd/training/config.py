"""The training config: dataclasses read from strict YAML (an unknown key is an error).

Sections (see ``configs/train-scifact-l3.yaml`` for every key, documented line by line)::

    data:        collection, split, score store, where positives come from
    student:     kind, model, pooling, similarity, prefixes, max lengths
    groups:      group size K, negative strategy (top / random / mixed), depth, seed,
                 short_queries, trust_labels
    loss:        a losses-registry spec, e.g. {margin_mse: 1.0, kl: 1.0}; a term with
                 ``in_batch: true`` (InfoNCE) scores every passage of the batch
    training:    output folder, epochs / steps, batch, learning rate, warm-up, precision, ...
    evaluation:  dev nDCG@10 every N steps (a split, or train queries held out)

Everything is checked when the config is loaded, before any model is built: unknown keys,
wrong types, unknown loss names and hyper-parameters, impossible values. Each problem is one
``RKDError`` naming the key (``training.batch_size``) and what is wrong.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.strict_config import read_yaml, strict_section
from retrieval_kd.training.precision import resolve_precision

STRATEGIES = ("top", "random", "mixed")
DEV_SEARCHES = ("rerank", "pool")
POSITIVES = ("qrels", "teacher")
SHORT_QUERIES = ("error", "skip")  # a query with fewer than K stored candidates
PRECISIONS = ("auto", "fp32", "bf16", "fp16")  # auto: bf16 on bf16 hardware, else fp32
IN_BATCH_LOSSES = ("info_nce",)


@dataclass
class DataConfig:
    """Where the training groups come from."""

    collection: str
    score_store: str
    split: str | None = "train"
    positives: str = "qrels"
    min_relevance: int = 1
    max_queries: int | None = None


@dataclass
class StudentConfig:
    """The student to train (see ``students.bi_encoder.BiEncoderSettings``)."""

    model: str
    kind: str = "bi-encoder"
    pooling: str | None = None
    similarity: str | None = None
    query_prefix: str | None = None
    passage_prefix: str | None = None
    query_max_length: int | None = None
    passage_max_length: int | None = None


@dataclass
class GroupConfig:
    """How each query's group of K passages is drawn from its teacher-scored candidates."""

    size: int = 8
    strategy: str = "top"
    depth: int = 50
    mixed_top: int | None = None
    seed: int | None = None
    short_queries: str = "error"  # fewer than K stored candidates: "error" or "skip"
    trust_labels: float | None = None  # lift judged positives above the group's negatives by this
    # suspected false negatives: {action: drop|mask|positive, absolute_margin, relative_margin}
    false_negatives: dict | None = None

    def false_negative_rule(self) -> Any:
        """The :class:`~retrieval_kd.training.false_negatives.FalseNegativeRule`, or None."""
        if self.false_negatives is None:
            return None
        from retrieval_kd.training.false_negatives import FalseNegativeRule

        return FalseNegativeRule(**self.false_negatives)


@dataclass
class TrainingConfig:
    """Hugging Face Trainer settings."""

    output_dir: str
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 16
    gradient_accumulation_steps: int = 1
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup: float = 0.1
    lr_scheduler: str = "linear"
    max_grad_norm: float = 1.0
    precision: str = "fp32"
    seed: int = 42
    logging_steps: int = 10
    save_steps: int | None = None
    save_total_limit: int | None = 2
    resume_from_checkpoint: bool | str | None = None
    grad_cache: bool = False
    grad_cache_chunk_size: int = 32
    # under DDP, in-batch negatives from every process (retrieval_kd.training.distributed)
    gather_across_devices: bool = True
    dataloader_workers: int = 0
    use_cpu: bool = False
    ddp_backend: str | None = None
    # WiSE-FT: final weights = interpolate * trained + (1 - interpolate) * starting weights
    interpolate: float | None = None
    # the Trainer's logging integrations: "none", or e.g. "tensorboard", "wandb" (comma-separated)
    report_to: str = "none"
    # attention-probability dropout while training (null: the checkpoint's own); 0 lets the
    # fused attention kernels run (retrieval_kd/training/attention_dropout.py)
    attention_dropout: float | None = None


@dataclass
class EvalConfig:
    """Dev evaluation during training; ``every_steps: null`` turns it off.

    ``search: rerank`` re-ranks each dev query's own ``depth`` candidates; ``search: pool`` ranks
    every dev query against the union of all their candidates and judged documents, a small
    stand-in for full-corpus retrieval (see ``retrieval_kd.training.dev``).
    """

    every_steps: int | None = None
    split: str | None = None
    holdout_queries: int = 0
    holdout_seed: int = 0
    candidates: str = "bm25"
    depth: int = 30
    search: str = "rerank"
    metric: str = "ndcg@10"
    conventions: str = "beir"
    batch_size: int = 64
    on_start: bool = True


@dataclass
class TrainConfig:
    """A whole training run."""

    data: DataConfig
    student: StudentConfig
    training: TrainingConfig
    loss: dict[str, Any] = field(default_factory=lambda: {"margin_mse": 1.0, "kl": 1.0})
    groups: GroupConfig = field(default_factory=GroupConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (what gets saved next to the model)."""
        return dataclasses.asdict(self)


SECTIONS: dict[str, type] = {
    "data": DataConfig,
    "student": StudentConfig,
    "groups": GroupConfig,
    "training": TrainingConfig,
    "evaluation": EvalConfig,
}


def _check(config: TrainConfig) -> None:
    """Value checks that need more than a type."""
    d, g, t, e = config.data, config.groups, config.training, config.evaluation

    def need(ok: bool, key: str, message: str) -> None:
        if not ok:
            raise RKDError(f"config key '{key}': {message}")

    need(d.positives in POSITIVES, "data.positives", f"must be one of {POSITIVES}")
    need(
        d.positives == "teacher" or d.split is not None,
        "data.split",
        "positives from qrels need a split (or set data.positives: teacher)",
    )
    need(d.max_queries is None or d.max_queries >= 1, "data.max_queries", "must be >= 1")
    from retrieval_kd.training.students import student_kinds

    need(
        config.student.kind in student_kinds(),
        "student.kind",
        f"unknown kind; valid: {', '.join(student_kinds())}",
    )
    need(g.size >= 2, "groups.size", "a group needs a positive and at least one other passage")
    need(g.strategy in STRATEGIES, "groups.strategy", f"must be one of {STRATEGIES}")
    need(
        g.short_queries in SHORT_QUERIES, "groups.short_queries", f"must be one of {SHORT_QUERIES}"
    )
    need(
        g.trust_labels is None or g.trust_labels >= 0,
        "groups.trust_labels",
        "must be null or a margin >= 0 (teacher score units)",
    )
    need(g.depth >= g.size - 1, "groups.depth", f"must be >= groups.size - 1 = {g.size - 1}")
    if g.false_negatives is not None:
        keys = ("action", "absolute_margin", "relative_margin")
        unknown = [k for k in g.false_negatives if k not in keys]
        need(not unknown, "groups.false_negatives", f"unknown key(s) {unknown}; valid: {keys}")
        try:
            g.false_negative_rule()
        except RKDError as err:
            raise RKDError(f"config key 'groups.false_negatives': {err}") from None
    need(
        g.mixed_top is None or 0 <= g.mixed_top <= g.size - 1,
        "groups.mixed_top",
        f"must be in 0..{g.size - 1}",
    )
    need(t.epochs > 0 or t.max_steps > 0, "training.epochs", "give epochs > 0 or max_steps > 0")
    need(t.batch_size >= 1, "training.batch_size", "must be >= 1")
    need(t.gradient_accumulation_steps >= 1, "training.gradient_accumulation_steps", "must be >= 1")
    need(t.learning_rate > 0, "training.learning_rate", "must be > 0")
    need(t.warmup >= 0, "training.warmup", "a fraction (< 1) or a number of steps (>= 1)")
    need(
        t.warmup < 1 or float(t.warmup).is_integer(),
        "training.warmup",
        "a fraction (< 1) or a whole number of steps",
    )
    need(t.precision in PRECISIONS, "training.precision", f"must be one of {PRECISIONS}")
    need(
        t.attention_dropout is None or 0 <= t.attention_dropout < 1,
        "training.attention_dropout",
        "must be null (the checkpoint's own) or in [0, 1)",
    )
    need(t.logging_steps >= 1, "training.logging_steps", "must be >= 1")
    need(t.save_steps is None or t.save_steps >= 1, "training.save_steps", "must be >= 1")
    need(
        t.save_steps is None or not e.every_steps or t.save_steps % e.every_steps == 0,
        "training.save_steps",
        f"must be a multiple of evaluation.every_steps ({e.every_steps}): the best checkpoint "
        "is chosen among saved ones",
    )
    need(
        t.interpolate is None or 0 < t.interpolate <= 1,
        "training.interpolate",
        "must be null (off) or a weight in (0, 1] for the trained weights",
    )
    need(t.grad_cache_chunk_size >= 1, "training.grad_cache_chunk_size", "must be >= 1")
    need(e.every_steps is None or e.every_steps >= 1, "evaluation.every_steps", "must be >= 1")
    need(e.holdout_queries >= 0, "evaluation.holdout_queries", "must be >= 0")
    need(e.depth >= 1, "evaluation.depth", "must be >= 1")
    need(e.search in DEV_SEARCHES, "evaluation.search", f"must be one of {DEV_SEARCHES}")
    if e.every_steps is not None:
        need(
            e.split is not None or e.holdout_queries > 0,
            "evaluation.holdout_queries",
            "dev evaluation needs evaluation.split or holdout_queries > 0",
        )
        need(
            e.candidates in ("bm25", "store") or Path(e.candidates).is_file(),
            "evaluation.candidates",
            "must be bm25, store or a TREC run file",
        )
        from evaluation.conventions import parse_metrics  # checks the metric name

        parse_metrics([e.metric])
    _, in_batch = split_loss_spec(config.loss)
    need(
        not in_batch or config.student.kind != "cross-encoder",
        "loss",
        "a cross-encoder student reads each (query, passage) pair jointly, so in-batch "
        "negatives would cost B x B*K forward passes: drop in_batch for it",
    )


def split_loss_spec(spec: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a loss spec into group terms and in-batch terms, and build both to validate them.

    A term written as a mapping with ``in_batch: true`` scores every query against every passage
    of the batch (InfoNCE with in-batch negatives); every other term scores each query's group.

    Returns:
        ``(group_spec, in_batch_spec)``, each a valid ``build_loss`` spec (possibly empty).

    Raises:
        RKDError: not a mapping, unknown loss, unknown hyper-parameter, bad weight, or an
            in-batch term whose loss is not one of ``IN_BATCH_LOSSES``.
    """
    from retrieval_kd.losses import build_loss

    if isinstance(spec, str):
        spec = {spec: 1.0}
    if not isinstance(spec, Mapping) or not spec:
        raise RKDError(f"config key 'loss' must be a non-empty mapping name -> weight: {spec!r}")
    group: dict[str, Any] = {}
    in_batch: dict[str, Any] = {}
    for name, term in spec.items():
        if isinstance(term, Mapping) and "in_batch" in term:
            term = dict(term)
            flag = term.pop("in_batch")
            if not isinstance(flag, bool):
                raise RKDError(f"config key 'loss.{name}.in_batch' must be true or false")
            if flag:
                registered = term.get("loss", name)
                if registered not in IN_BATCH_LOSSES:
                    raise RKDError(
                        f"loss term {name!r}: in_batch works with {', '.join(IN_BATCH_LOSSES)} "
                        f"only (teacher scores exist for a query's own candidates only), "
                        f"not {registered!r}"
                    )
                in_batch[name] = term
                continue
        group[name] = term
    for part in (group, in_batch):
        if part:
            build_loss(part)
    return group, in_batch


def config_from_dict(raw: Mapping[str, Any]) -> TrainConfig:
    """Build and check a :class:`TrainConfig` from plain data (e.g. parsed YAML).

    Raises:
        RKDError: the first problem found (unknown key, wrong type, bad value, bad loss).
    """
    if not isinstance(raw, Mapping):
        raise RKDError(f"a training config must be a mapping, got {type(raw).__name__}")
    valid = [*SECTIONS, "loss"]
    for key in raw:
        if key not in valid:
            raise RKDError(f"unknown config section {key!r}; valid sections: {', '.join(valid)}")
    for required in ("data", "student", "training"):
        if required not in raw:
            raise RKDError(f"missing required config section {required!r}")
    sections = {name: strict_section(cls, raw.get(name), name) for name, cls in SECTIONS.items()}
    loss = raw.get("loss", {"margin_mse": 1.0, "kl": 1.0})
    config = TrainConfig(loss=dict(loss) if isinstance(loss, Mapping) else loss, **sections)
    _check(config)
    config.training.precision = resolve_precision(config.training.precision)
    return config


def load_config(path: str | Path) -> TrainConfig:
    """Read a YAML training config strictly (see :func:`config_from_dict`).

    Raises:
        InputError: missing or unparsable file.
        RKDError: invalid content.
    """
    raw = read_yaml(path)
    try:
        return config_from_dict(raw or {})
    except InputError:
        raise
    except RKDError as err:
        raise InputError(str(err), path) from None


def as_config(config: TrainConfig | Mapping[str, Any] | str | Path) -> TrainConfig:
    """Accept a config object, plain data or a YAML path."""
    if isinstance(config, TrainConfig):
        _check(config)
        config.training.precision = resolve_precision(config.training.precision)
        return config
    if isinstance(config, str | Path):
        return load_config(config)
    return config_from_dict(config)
