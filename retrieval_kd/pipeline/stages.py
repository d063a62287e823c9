"""Stages of a pipeline run: each writes a folder with a manifest and is skipped when done.

A stage's fingerprint hashes its settings and the fingerprints of the stages it reads, so
changing the loss re-runs training and what follows, but not candidates or teacher scoring.
A folder whose manifest carries another fingerprint is stale and is cleared before the stage
runs; a folder without a manifest is an interrupted run, left in place for the stage to
resume (score stores, training checkpoints and index chunks all resume) — unless the
fingerprint it was started with (``STARTED_NAME``, written first) differs: then it was started
with other settings, is stale too, and is cleared, so a checkpoint of another loss is never
resumed.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retrieval_kd.manifest import MANIFEST_NAME, fingerprint, measure, read_manifest, write_manifest

logger = logging.getLogger(__name__)
STARTED_NAME = ".started-fingerprint"  # the fingerprint an unfinished folder was started with


@dataclass
class Stage:
    """One step of the plan.

    Attributes:
        name: folder name under the run directory (``teacher-train``...).
        settings: what the stage does, including upstream stages' fingerprints.
        work: ``work(folder) -> dict`` does the stage's job inside ``folder`` and returns the
            manifest fields it adds (outputs, throughput).
        describe: one line for ``--dry-run``.
    """

    name: str
    settings: dict[str, Any]
    work: Callable[[Path], dict[str, Any]]
    describe: str = ""
    after: list[str] = field(default_factory=list)

    @property
    def fingerprint(self) -> str:
        return fingerprint({"stage": self.name, **self.settings})


def stage_state(root: Path, stage: Stage) -> str:
    """``done`` (same fingerprint finished), ``stale`` (other settings), ``partial`` or ``new``."""
    folder = root / stage.name
    if (folder / MANIFEST_NAME).is_file():
        return "done" if read_manifest(folder).get("fingerprint") == stage.fingerprint else "stale"
    if not folder.exists():
        return "new"
    started = folder / STARTED_NAME
    if started.is_file() and started.read_text().strip() != stage.fingerprint:
        return "stale"
    return "partial"


def reuse_stage(root: Path, stage: Stage, other: Path) -> bool:
    """Link ``other/<stage>`` into ``root`` when it finished with this very fingerprint and
    ``root`` has nothing of that stage yet (``rkd distill --reuse``: another seed's run shares
    the generation, candidates and teacher scores of the first). Returns whether it linked."""
    source = Path(other) / stage.name
    if stage_state(root, stage) != "new" or stage_state(Path(other), stage) != "done":
        return False
    root.mkdir(parents=True, exist_ok=True)
    (root / stage.name).symlink_to(source.resolve(), target_is_directory=True)
    logger.info("%s: reused from %s", stage.name, source)
    return True


def run_stage(root: Path, stage: Stage) -> dict[str, Any]:
    """Run ``stage`` unless done; return its manifest."""
    folder = root / stage.name
    state = stage_state(root, stage)
    if state == "done":
        logger.info("%s: done, skipped", stage.name)
        return read_manifest(folder)
    if state == "stale":
        logger.info("%s: settings changed, clearing %s", stage.name, folder)
        if folder.is_symlink():  # linked from another run by --reuse: unlink, keep the original
            folder.unlink()
        else:
            shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _write_started(folder, stage.fingerprint)
    with measure() as cost:
        outputs = stage.work(folder)
    manifest = {
        "stage": stage.name,
        "fingerprint": stage.fingerprint,
        "settings": stage.settings,
        "resumed": state == "partial",
        "outputs": outputs,
        "cost": cost,
    }
    write_manifest(folder, manifest)
    return read_manifest(folder)


def _write_started(folder: Path, value: str) -> None:
    """Record (atomically) the fingerprint this folder's work was started with."""
    tmp = folder / f"{STARTED_NAME}.tmp"
    tmp.write_text(value + "\n")
    tmp.replace(folder / STARTED_NAME)
