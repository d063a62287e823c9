"""``rkd distill``: candidates -> teacher -> training -> index -> search -> report."""

from __future__ import annotations

from pathlib import Path

import typer


def distill(
    config: Path = typer.Option(..., help="Distillation YAML config (see configs/)."),
    quick: bool = typer.Option(False, help="Apply the config's quick: overrides (a subset)."),
    until: str = typer.Option(
        None,
        help="Stop after this stage: candidates, score, train, index, report, or a stage name.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan and stop."),
    teacher: str = typer.Option(
        None, envvar=None, help="Teacher spec overriding the config's teacher and fallbacks."
    ),
    set_: list[str] = typer.Option(
        None,
        "--set",
        help="Override a config key: section.key=value (YAML value), e.g. training.seed=1. "
        "Repeatable.",
    ),
    reuse: Path = typer.Option(
        None,
        help="Another run folder: its finished stages with the same settings are linked in "
        "instead of run again (e.g. a second seed reuses the teacher scores).",
    ),
) -> None:
    """Run every stage not already done with the same inputs and settings."""
    from retrieval_kd.errors import InputError
    from retrieval_kd.pipeline import DistillRun, load_distill_config

    settings = load_distill_config(config, quick=quick, overrides=list(set_ or []))
    if reuse is not None and not reuse.is_dir():
        raise InputError("--reuse: no such run folder", reuse)
    pipeline = DistillRun(settings, teacher=teacher, echo=typer.echo, dry_run=dry_run)
    if dry_run:
        typer.echo(f"plan for {settings.name} -> {settings.output_dir}")
        for line in pipeline.describe_plan(until):
            typer.echo(line)
        return
    pipeline.run(until, reuse=reuse)
