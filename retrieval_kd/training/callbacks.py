"""Trainer callbacks and the loss / dev curves written next to the trained model.

- :class:`EpochCallback` tells the group dataset which epoch starts, so that groups are re-drawn
  each epoch (accelerate forwards ``set_epoch`` to a dataset only in some sampler set-ups).
- :func:`curves_from_history` and :func:`write_curves` turn the Trainer's ``log_history`` into
  ``loss_curves.json`` and ``loss_curves.png``: every logged loss term per step, and the dev
  metric per evaluation.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

TERM_PREFIX = "loss/"


class EpochCallback(TrainerCallback):
    """Calls ``dataset.set_epoch(epoch)`` at the start of every epoch (also after a resume)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def on_epoch_begin(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        # state.epoch is (epochs done) + (fraction of the current one): its floor is the epoch.
        self.dataset.set_epoch(math.floor((state.epoch or 0.0) + 1e-9))


def curves_from_history(log_history: list[dict[str, Any]], metric: str | None) -> dict[str, Any]:
    """Per-step training losses (total and each term) and per-evaluation dev metric.

    Returns:
        ``{"train": [{"step", "loss", "loss/<term>", "learning_rate"}...],
        "dev": [{"step", "<metric>"}...], "metric": metric}``.
    """
    train, dev = [], []
    key = f"eval_{metric}" if metric else None
    for entry in log_history:
        if "loss" in entry and "step" in entry:
            row = {"step": entry["step"], "loss": entry["loss"]}
            row.update({k: v for k, v in entry.items() if k.startswith(TERM_PREFIX)})
            if "learning_rate" in entry:
                row["learning_rate"] = entry["learning_rate"]
            train.append(row)
        if key and key in entry:
            dev.append({"step": entry["step"], metric: entry[key]})
    return {"train": train, "dev": dev, "metric": metric}


def write_curves(curves: dict[str, Any], folder: str | Path) -> list[Path]:
    """Write ``loss_curves.json`` and, when matplotlib is importable, ``loss_curves.png``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / "loss_curves.json"
    json_path.write_text(json.dumps(curves, indent=2) + "\n", encoding="utf-8")
    written = [json_path]
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return written
    panels = 2 if curves["dev"] else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 4), squeeze=False)
    ax = axes[0][0]
    names = ["loss"] + sorted({k for row in curves["train"] for k in row if k.startswith("loss/")})
    for name in names:
        points = [(row["step"], row[name]) for row in curves["train"] if name in row]
        if points:
            ax.plot(*zip(*points, strict=True), marker=".", label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend()
    ax.set_title("training loss and its terms")
    if curves["dev"]:
        metric = curves["metric"]
        points = [(row["step"], row[metric]) for row in curves["dev"]]
        axes[0][1].plot(*zip(*points, strict=True), marker="o", color="tab:green")
        axes[0][1].set_xlabel("step")
        axes[0][1].set_ylabel(f"dev {metric}")
        axes[0][1].set_title(f"dev {metric}")
    fig.tight_layout()
    png_path = folder / "loss_curves.png"
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    written.append(png_path)
    return written
