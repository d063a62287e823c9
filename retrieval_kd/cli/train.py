"""``rkd train --config <yaml>``: train a student from a teacher score store.

Runs unchanged under ``torchrun --nproc_per_node N -m retrieval_kd.cli train --config ...`` or
``accelerate launch``: every process runs the same command and the Trainer shares the work.
"""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    config: Path = typer.Option(..., help="Training config (YAML); see configs/train-*.yaml."),
    resume: bool = typer.Option(
        False, help="Resume from the last checkpoint in training.output_dir."
    ),
    output_dir: Path = typer.Option(None, help="Override training.output_dir."),
) -> None:
    """Train a student as the config says; prints where the model went and the dev curve."""
    import dataclasses
    import os

    from retrieval_kd.training import load_config
    from retrieval_kd.training import train as run_train

    cfg = load_config(config)
    if resume or output_dir is not None:
        training = dataclasses.replace(
            cfg.training,
            resume_from_checkpoint=True if resume else cfg.training.resume_from_checkpoint,
            output_dir=str(output_dir) if output_dir is not None else cfg.training.output_dir,
        )
        cfg = dataclasses.replace(cfg, training=training)
    result = run_train(cfg)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, one process reports
        return
    curve = ", ".join(f"{step}: {value:.4f}" for step, value in result.dev_curve)
    typer.echo(f"trained {result.global_step} steps -> {result.model_dir}")
    if curve:
        typer.echo(f"dev {cfg.evaluation.metric} by step: {curve}")
        typer.echo(f"best {result.best_metric:.4f} ({result.best_checkpoint or 'last weights'})")
