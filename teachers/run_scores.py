"""A candidate run's own scores as a teacher (e.g. BM25's), for hybrid lexical + neural teachers."""

from __future__ import annotations

from typing import Any

import numpy as np

from retrieval_kd.data.runs import run_fingerprint
from retrieval_kd.data.types import Run
from retrieval_kd.errors import InputError, RKDError


class RunScoreTeacher:
    """Looks scores up in a run by (query id, doc id); needs no model and reads no text.

    A document the run does not list for that query gets the query's lowest listed score
    (it ranks last without becoming an outlier after calibration), or, with
    ``missing="error"``, is an error.

    Args:
        run: query id -> {doc id: score}, e.g. BM25 candidates.
        name: a label for manifests (``"bm25"``).
        missing: ``"floor"`` (default) or ``"error"``: what a pair the run does not list gets.
    """

    def __init__(self, run: Run, name: str = "run", missing: str = "floor"):
        if missing not in ("floor", "error"):
            raise RKDError(f"missing must be 'floor' or 'error', got {missing!r}")
        self.run = run
        self.name = name
        self.missing = missing

    def score(
        self,
        queries: list[str],
        passages: list[list[str]],
        *,
        query_ids: list[str] | None = None,
        doc_ids: list[list[str]] | None = None,
    ) -> list[np.ndarray]:
        """Shapes: Q queries with K_i candidates each -> Q arrays [K_i] (ids required)."""
        if query_ids is None or doc_ids is None:
            raise RKDError(
                f"teacher {self.name!r} looks scores up by id: the caller must pass "
                "query_ids and doc_ids"
            )
        out = []
        for query_id, docs in zip(query_ids, doc_ids, strict=True):
            listed = self.run.get(query_id, {})
            if self.missing == "error":
                self._refuse_missing(query_id, [d for d in docs if d not in listed])
            floor = min(listed.values()) if listed else 0.0
            out.append(np.array([listed.get(d, floor) for d in docs], dtype=np.float64))
        return out

    def _refuse_missing(self, query_id: str, missing: list[str]) -> None:
        if missing:
            shown = ", ".join(repr(d) for d in missing[:5])
            raise InputError(
                f"teacher {self.name!r} holds no score for query {query_id!r} and "
                f"{len(missing)} of its candidates ({shown}): score them with that teacher "
                "first (the same candidates and depth)"
            )

    def describe(self) -> dict[str, Any]:
        return {"kind": "run", "name": self.name, "run_fingerprint": run_fingerprint(self.run)}
