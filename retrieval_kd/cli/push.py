"""``rkd push``: upload a saved student folder, with its model card, to the Hugging Face hub."""

from __future__ import annotations

from pathlib import Path

import typer


def push(
    model: Path = typer.Option(
        ..., help="A saved student folder, e.g. <run>/train-distilled/model."
    ),
    repo: str = typer.Option(..., help="Hub repository id, org/name (created if missing)."),
    private: bool = typer.Option(False, help="Create the repository private."),
    message: str = typer.Option(None, help="Commit message."),
) -> None:
    from retrieval_kd.models.push import push_to_hub

    url = push_to_hub(model, repo, private=private, commit_message=message)
    typer.echo(f"uploaded {model} -> {url}")
