"""Another teacher's stored scores as a teacher: score once, combine many times.

An LLM teacher costs an hour where BM25 costs a second. ``scores:<path>`` reads what a teacher
already wrote (a finished score store, an ``rkd distill`` / ``rkd score`` stage folder holding
one, or a TREC run file) and serves those scores by (query id, doc id), so the expensive member
of an ensemble is scored once and re-weighted or re-combined with cheap ones as often as wanted::

    ensemble:zscore:bm25*1+scores:runs/llm-ql-train*1

Unlike a candidate run's scores (``run``), a stored teacher must have scored every pair it is
asked for: a pair it does not hold is an error, not a floor value, because a silent stand-in
would change the ensemble's ranking of exactly the candidates the store missed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from retrieval_kd.data.types import Run
from retrieval_kd.errors import InputError
from teachers.run_scores import RunScoreTeacher


def load_stored_scores(path: str | Path) -> tuple[Run, dict[str, Any]]:
    """(run, identity) of a finished score store, a stage folder with one, or a TREC run file.

    Raises:
        InputError: nothing readable there, or a store that is unfinished (no manifest).
    """
    from retrieval_kd.data import read_run
    from retrieval_kd.manifest import sha256_file
    from retrieval_kd.store import ScoreStore

    path = Path(path)
    if path.is_file():
        return read_run(path), {"file": str(path.resolve()), "sha256": sha256_file(path)}
    if not path.is_dir():
        raise InputError("stored teacher scores: no such file or folder", path)
    folder = path / "store" if (path / "store").is_dir() else path
    store = ScoreStore(folder)
    manifest = store.manifest
    if manifest is None:
        raise InputError(
            "stored teacher scores: not a finished score store (no manifest.json)", folder
        )
    identity = {
        "store": str(folder.resolve()),
        "manifest_sha256": sha256_file(folder / "manifest.json"),
        "teacher": manifest.get("teacher"),
    }
    return store.to_run(), identity


class StoredScoresTeacher(RunScoreTeacher):
    """Looks a stored teacher's scores up by (query id, doc id); reads no text, runs no model.

    Args:
        path: a finished score store, a stage folder with one in ``store/``, or a TREC run.

    Raises:
        InputError: from :func:`load_stored_scores`; at scoring time, a pair the store does not
            hold.
    """

    def __init__(self, path: str | Path):
        run, self.identity = load_stored_scores(path)
        super().__init__(run, name=f"scores:{path}", missing="error")

    def describe(self) -> dict[str, Any]:
        return {"kind": "scores", **self.identity}
