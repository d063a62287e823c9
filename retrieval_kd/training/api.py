"""``train(config) -> TrainResult``: from a YAML config to a trained student folder.

Order of work, so that a bad input fails before anything expensive:

1. the config (strict: unknown keys, types, loss names), then the data: the collection, the score
   store (must be complete: it has a ``manifest.json``), its query ids against the query texts,
   its doc ids against the corpus, K against the stored candidates;
2. the dev set (a split, or held-out training queries) and the student;
3. training on :class:`~retrieval_kd.training.trainer.DistillTrainer` (checkpoints in
   ``training.output_dir/checkpoint-*``, resumable);
4. the final student, the best checkpoint when a dev set is evaluated, in
   ``training.output_dir/model``: a plain sentence-transformers folder with ``rkd_student.json``,
   ``train_config.yaml`` (the resolved config), ``loss_curves.json`` / ``.png`` and
   ``manifest.json`` (inputs with hashes, settings, dev curve, cost).

Re-running a finished config with the same inputs does nothing and returns the recorded result.
Under ``torchrun`` / ``accelerate launch`` every process runs this same function.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from retrieval_kd.errors import InputError
from retrieval_kd.manifest import (
    MANIFEST_NAME,
    fingerprint,
    measure,
    read_manifest,
    sha256_file,
    write_manifest,
)
from retrieval_kd.models.model_card import write_model_card
from retrieval_kd.training.config import TrainConfig, as_config, split_loss_spec

logger = logging.getLogger(__name__)
MODEL_DIR = "model"


@dataclass
class TrainResult:
    """What a training run produced.

    Attributes:
        model_dir: the trained student (plain sentence-transformers folder + our records).
        global_step: optimizer steps done.
        best_metric: best dev value (None without a dev set).
        best_checkpoint: the checkpoint the final model comes from (None: the last weights).
        dev_curve: ``[(step, value)]`` of the dev metric, in order.
        loss_curve: logged training losses per step (total and each term).
        manifest: the ``manifest.json`` written with the model.
    """

    model_dir: Path
    global_step: int
    best_metric: float | None
    best_checkpoint: str | None
    dev_curve: list[tuple[int, float]] = field(default_factory=list)
    loss_curve: list[dict[str, float]] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_manifest(cls, model_dir: Path, manifest: dict[str, Any]) -> TrainResult:
        result = manifest.get("result", {})
        return cls(
            model_dir=model_dir,
            global_step=result.get("global_step", 0),
            best_metric=result.get("best_metric"),
            best_checkpoint=result.get("best_checkpoint"),
            dev_curve=[tuple(p) for p in result.get("dev_curve", [])],
            loss_curve=result.get("loss_curve", []),
            manifest=manifest,
        )


def _store_identity(folder: Path) -> dict[str, Any]:
    from retrieval_kd.store import ScoreStore

    store = ScoreStore(folder)
    inner = Path(folder) / "store"
    if not store.shard_paths and inner.is_dir():  # an rkd distill stage folder, not its store
        raise InputError(f"no score shards here; the stage's score store is {inner}", folder)
    manifest = store.manifest
    if manifest is None:
        raise InputError("the score store is unfinished (no manifest.json): finish scoring", folder)
    return {
        "folder": str(folder.resolve()),
        "manifest_sha256": sha256_file(folder / MANIFEST_NAME),
        "teacher": manifest.get("teacher"),
        "queries": len(store),
        "pairs": store.num_pairs,
        "_store": store,
    }


def _train_query_ids(config: TrainConfig, store: Any, dataset: Any) -> list[str]:
    """Store queries with text (checked), restricted to the split's judged queries."""
    every = dataset.load_all_queries()
    no_text = [q for q in store.query_ids() if q not in every]
    if no_text:
        shown = ", ".join(repr(q) for q in no_text[:5])
        raise InputError(
            f"{len(no_text)} query id(s) of the score store have no query text in "
            f"{config.data.collection!r}: {shown}",
            store.folder,
        )
    ids = store.query_ids()
    if config.data.split is not None:
        ids = [q for q in ids if q in dataset.qrels]
        if not ids:
            raise InputError(
                f"no query of the score store is judged in split {config.data.split!r}",
                store.folder,
            )
    return ids


def _prepare(config: TrainConfig) -> dict[str, Any]:
    """Step 1-2 inputs that need no model: data, groups (validated), dev query choice."""
    from retrieval_kd.data import load_dataset
    from retrieval_kd.training.dev import holdout_ids
    from retrieval_kd.training.groups import GroupDataset, GroupSampler

    d, g, e = config.data, config.groups, config.evaluation
    store_info = _store_identity(Path(d.score_store))
    store = store_info.pop("_store")
    dataset = load_dataset(d.collection, d.split)
    all_queries = dataset.load_all_queries()
    qrels = dataset.qrels if d.split is not None else None
    ids = _train_query_ids(config, store, dataset)
    dev_ids: list[str] = []
    if e.every_steps is not None and e.split is None:
        dev_ids = holdout_ids(ids, qrels or {}, e.holdout_queries, e.holdout_seed)
        held = set(dev_ids)
        ids = [q for q in ids if q not in held]
    if d.max_queries is not None and d.max_queries < len(ids):
        rng = np.random.default_rng(config.training.seed)
        ids = sorted(ids[i] for i in rng.choice(len(ids), size=d.max_queries, replace=False))
    sampler = GroupSampler(
        g.size,
        g.strategy,
        g.depth,
        g.mixed_top,
        config.training.seed if g.seed is None else g.seed,
        g.false_negative_rule(),
    )
    groups = GroupDataset(
        store,
        all_queries,
        dataset.corpus,
        sampler,
        qrels,
        d.positives,
        d.min_relevance,
        ids,
        short_queries=g.short_queries,
        trust_labels=g.trust_labels,
    )
    return {
        "store": store,
        "store_info": store_info,
        "dataset": dataset,
        "queries": all_queries,
        "qrels": qrels,
        "groups": groups,
        "dev_ids": dev_ids,
    }


def _dev_set(config: TrainConfig, prepared: dict[str, Any]) -> Any:
    from retrieval_kd.data import load_dataset
    from retrieval_kd.training.dev import build_dev_set

    e = config.evaluation
    if e.every_steps is None:
        return None
    if e.split is not None:
        dev_data = load_dataset(config.data.collection, e.split)
        queries, qrels = dev_data.queries, dev_data.qrels
    else:
        ids = prepared["dev_ids"]
        queries = {q: prepared["queries"][q] for q in ids}
        qrels = {q: prepared["qrels"][q] for q in ids}
    corpus = prepared["dataset"].corpus
    return build_dev_set(e, config.data.collection, corpus, queries, qrels, prepared["store"])


def _settings_fingerprint(config: TrainConfig, store_info: dict[str, Any]) -> str:
    plain = config.to_dict()
    plain["training"].pop("resume_from_checkpoint", None)
    return fingerprint({"config": plain, "store": store_info["manifest_sha256"]})


def train(
    config: TrainConfig | dict[str, Any] | str | Path, callbacks: list[Any] | None = None
) -> TrainResult:
    """Train a student as the config says (see the module docstring); every rank calls this.

    Args:
        config: a :class:`TrainConfig`, its plain-data form, or a YAML file path.
        callbacks: extra ``transformers.TrainerCallback`` objects (logging, early stopping...).

    Returns:
        The :class:`TrainResult` (also recorded in ``<output_dir>/model/manifest.json``).

    Raises:
        RKDError / InputError: any config or data problem, before training starts.
    """
    from retrieval_kd.losses import build_loss
    from retrieval_kd.training.run import run_training

    config = as_config(config)
    group_spec, in_batch_spec = split_loss_spec(config.loss)
    losses = (
        build_loss(group_spec) if group_spec else None,
        build_loss(in_batch_spec) if in_batch_spec else None,
    )
    out_dir = Path(config.training.output_dir)
    model_dir = out_dir / MODEL_DIR
    with measure() as cost:
        prepared = _prepare(config)
        settings_fp = _settings_fingerprint(config, prepared["store_info"])
        if (model_dir / MANIFEST_NAME).is_file() and not config.training.resume_from_checkpoint:
            previous = read_manifest(model_dir)
            if previous.get("settings_fingerprint") == settings_fp:
                logger.info("%s is complete for these settings: nothing to do", model_dir)
                return TrainResult.from_manifest(model_dir, previous)
        outcome = run_training(
            config, prepared, losses, lambda: _dev_set(config, prepared), callbacks
        )
    if not outcome["is_main"]:
        return TrainResult(model_dir, outcome["global_step"], outcome["best_metric"],
                           outcome["best_checkpoint"], outcome["dev_curve"])  # fmt: skip
    (model_dir / "train_config.yaml").write_text(
        yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8"
    )
    result = {
        "global_step": outcome["global_step"],
        "best_metric": outcome["best_metric"],
        "best_checkpoint": outcome["best_checkpoint"],
        "dev_curve": outcome["dev_curve"],
        "loss_curve": outcome["curves"]["train"],
        "train_queries": len(prepared["groups"]),
        "skipped_queries": prepared["groups"].skipped,
        "false_negatives": prepared["groups"].false_negative_counts(),
        "examples_per_s": outcome["examples_per_s"],
        "world_size": outcome["world_size"],
        "in_batch_processes": outcome.get("in_batch_processes"),
    }
    manifest = {
        "stage": "train",
        "settings_fingerprint": settings_fp,
        "config": config.to_dict(),
        "inputs": {
            "collection": prepared["dataset"].label,
            "corpus_fingerprint": prepared["dataset"].corpus.fingerprint(),
            "score_store": prepared["store_info"],
            "dev": outcome["dev"],
        },
        "student": outcome["student"],
        "result": result,
        "cost": {**cost, "train_runtime_s": outcome["train_runtime_s"]},
    }
    write_manifest(model_dir, manifest)
    written = read_manifest(model_dir)
    write_model_card(model_dir, written)
    return TrainResult.from_manifest(model_dir, written)
