"""The Trainer part of :func:`retrieval_kd.training.train`: arguments, trainer, fit, save.

Kept apart from the data preparation so that the mapping from our config to
``transformers.TrainingArguments`` is in one place:

=====================================  ========================================================
config                                 TrainingArguments
=====================================  ========================================================
training.batch_size                    per_device_train_batch_size (per process)
training.epochs / max_steps            num_train_epochs / max_steps
training.warmup                        warmup_steps (a fraction < 1 or a number of steps)
training.precision bf16 / fp16         bf16 / fp16 (autocast through accelerate); ``auto`` is
                                       resolved when the config is read (training.precision)
training.save_steps                    save_steps (default: evaluation.every_steps, else 500)
evaluation.every_steps                 eval_steps, load_best_model_at_end, metric_for_best_model
=====================================  ========================================================
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import torch
from transformers import TrainingArguments

from retrieval_kd.errors import RKDError
from retrieval_kd.progress import is_quiet
from retrieval_kd.training.callbacks import EpochCallback, curves_from_history, write_curves
from retrieval_kd.training.config import TrainConfig
from retrieval_kd.training.interpolation import interpolate_weights, snapshot

DEFAULT_SAVE_STEPS = 500


def training_arguments(config: TrainConfig, with_dev: bool) -> TrainingArguments:
    """``TrainingArguments`` for the config (see the module docstring's table)."""
    t, e = config.training, config.evaluation
    save_steps = t.save_steps or (e.every_steps if with_dev else DEFAULT_SAVE_STEPS)
    if with_dev and save_steps % e.every_steps:
        raise RKDError(
            f"training.save_steps ({save_steps}) must be a multiple of evaluation.every_steps "
            f"({e.every_steps}) so that the best checkpoint can be kept"
        )
    # Without a GPU, accelerate forms a DDP group of processes, and transformers allows bf16
    # autocast, only when told the processes are CPU ones.
    no_gpu = not torch.cuda.is_available()
    cpu_group = no_gpu and int(os.environ.get("WORLD_SIZE", "1")) > 1
    cpu_bf16 = no_gpu and t.precision == "bf16"
    return TrainingArguments(
        output_dir=t.output_dir,
        per_device_train_batch_size=t.batch_size,
        num_train_epochs=t.epochs,
        max_steps=t.max_steps,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        weight_decay=t.weight_decay,
        warmup_steps=t.warmup if t.warmup < 1 else int(t.warmup),
        lr_scheduler_type=t.lr_scheduler,
        max_grad_norm=t.max_grad_norm,
        bf16=t.precision == "bf16",
        fp16=t.precision == "fp16",
        seed=t.seed,
        data_seed=t.seed,
        logging_steps=t.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=save_steps,
        save_total_limit=t.save_total_limit,
        eval_strategy="steps" if with_dev else "no",
        eval_steps=e.every_steps if with_dev else None,
        eval_on_start=with_dev and e.on_start,
        load_best_model_at_end=with_dev,
        metric_for_best_model=e.metric if with_dev else None,
        greater_is_better=True,
        remove_unused_columns=False,
        report_to=[name.strip() for name in t.report_to.split(",") if name.strip()] or "none",
        dataloader_num_workers=t.dataloader_workers,
        ddp_find_unused_parameters=True,
        ddp_backend=t.ddp_backend or ("gloo" if cpu_group else None),
        use_cpu=t.use_cpu or cpu_group or cpu_bf16,
        disable_tqdm=is_quiet(),
        dataloader_pin_memory=torch.cuda.is_available(),
    )


def run_training(
    config: TrainConfig,
    prepared: dict[str, Any],
    losses: tuple[Any, Any],
    dev_factory: Callable[[], Any],
    callbacks: list[Any] | None = None,
) -> dict[str, Any]:
    """Build the trainer, train (resuming if asked), save the final student on the main process.

    Returns:
        ``global_step``, ``best_metric``, ``best_checkpoint``, ``dev_curve``, ``curves``,
        ``dev`` (description), ``student`` (describe()), ``examples_per_s``,
        ``train_runtime_s``, ``world_size``, ``is_main``.
    """
    from retrieval_kd.training.api import MODEL_DIR
    from retrieval_kd.training.students import build_student
    from retrieval_kd.training.trainer import DistillTrainer

    with_dev = config.evaluation.every_steps is not None
    args = training_arguments(config, with_dev)
    with args.main_process_first(desc="dev set"):  # BM25 index and model copies built once
        dev = dev_factory()
        student = build_student(config.student)
    if config.training.attention_dropout is not None:
        from retrieval_kd.training.attention_dropout import set_attention_dropout

        set_attention_dropout(student.model, config.training.attention_dropout)
    groups = prepared["groups"]
    alpha = config.training.interpolate
    # only the main process saves, so only it keeps a copy of the starting weights
    initial = snapshot(student.model) if alpha is not None and args.process_index == 0 else None
    trainer = DistillTrainer(
        student=student,
        group_loss=losses[0],
        in_batch_loss=losses[1],
        dev=dev,
        eval_batch_size=config.evaluation.batch_size,
        grad_cache=config.training.grad_cache,
        grad_cache_chunk_size=config.training.grad_cache_chunk_size,
        gather_across_devices=config.training.gather_across_devices,
        args=args,
        train_dataset=groups,
        callbacks=[EpochCallback(groups), *(callbacks or [])],
    )
    resume = config.training.resume_from_checkpoint
    start = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=resume or None)
    runtime = time.perf_counter() - start
    curves = curves_from_history(trainer.state.log_history, dev.metric if dev else None)
    is_main = trainer.is_world_process_zero()
    model_dir = f"{config.training.output_dir}/{MODEL_DIR}"
    if is_main:
        if initial is not None:
            interpolate_weights(student.model, initial, alpha)
        student.save(model_dir)
        write_curves(curves, model_dir)
    trainer.accelerator.wait_for_everyone()
    steps_run = output.global_step - getattr(trainer, "_initial_global_step", 0)
    examples = steps_run * args.train_batch_size * args.gradient_accumulation_steps
    return {
        "global_step": output.global_step,
        "best_metric": trainer.state.best_metric,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "dev_curve": [(row["step"], row[dev.metric]) for row in curves["dev"]] if dev else [],
        "curves": curves,
        "dev": dev.describe() if dev else None,
        "student": student.describe(),
        "examples_per_s": round(examples * args.world_size / max(runtime, 1e-9), 3),
        "train_runtime_s": round(runtime, 3),
        "world_size": args.world_size,
        # processes whose passages each query's in-batch negatives come from
        "in_batch_processes": None
        if losses[1] is None
        else (args.world_size if trainer.gathering else 1),
        "is_main": is_main,
    }
