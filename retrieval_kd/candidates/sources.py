"""Candidate sources by spec, and one call that retrieves from several and fuses them.

Specs::

    bm25               BM25 over the corpus (bm25s, cached index)
    dense:<model>      a bi-encoder's top-k over a FAISS index of the corpus (any sentence-
                       transformers model: hub id, short name, local folder, trained student)
    <file>             an external TREC run of the collection (``run:<file>`` also works)

:func:`parse_sources` checks specs before anything is retrieved (an unknown kind, a run file that
is not there, a dense model that cannot be resolved): one clear error, before any expensive stage.

Example:
    >>> [s.kind for s in parse_sources(["bm25"])]
    ['bm25']
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retrieval_kd.data.corpus import Corpus
from retrieval_kd.data.types import Queries, Run
from retrieval_kd.errors import InputError


@dataclass(frozen=True)
class CandidateSource:
    """One parsed source: ``kind`` is ``bm25``, ``dense`` or ``run``; ``target`` the model or
    file (empty for bm25)."""

    spec: str
    kind: str
    target: str = ""

    @property
    def name(self) -> str:
        """A short label for manifests and reports."""
        if self.kind == "bm25":
            return "bm25"
        return f"{self.kind}:{Path(self.target).name if self.kind == 'run' else self.target}"


def parse_source(spec: str, resolve: bool = True) -> CandidateSource:
    """One spec (module docstring); ``resolve`` checks a dense model resolves (no weights load).

    Raises:
        InputError: an empty spec or a run file that does not exist.
        RKDError: a dense model that cannot be resolved.
    """
    spec = str(spec).strip()
    if not spec:
        raise InputError("empty candidate source; use bm25, dense:<model> or a TREC run file")
    if spec == "bm25":
        return CandidateSource(spec, "bm25")
    head, sep, tail = spec.partition(":")
    if sep and head == "dense":
        if not tail:
            raise InputError("candidate source dense: needs a model (dense:<model or folder>)")
        if resolve:
            from retrieval_kd.models import resolve_model

            resolve_model(tail)
        return CandidateSource(spec, "dense", tail)
    path = tail if sep and head == "run" else spec
    if not Path(path).is_file():
        raise InputError(
            f"unknown candidate source {spec!r}: not bm25, dense:<model>, nor an existing TREC "
            "run file"
        )
    return CandidateSource(spec, "run", path)


def parse_sources(specs: Sequence[str], resolve: bool = True) -> list[CandidateSource]:
    """Every spec of a list (at least one), checked (see :func:`parse_source`)."""
    if isinstance(specs, str):
        specs = [specs]
    if not specs:
        raise InputError("give at least one candidate source")
    parsed = [parse_source(s, resolve) for s in specs]
    if len({s.spec for s in parsed}) != len(parsed):
        raise InputError(f"a candidate source is listed twice: {list(specs)}")
    return parsed


def retrieve_candidates(
    sources: Sequence[CandidateSource],
    corpus: Corpus,
    queries: Queries,
    depth: int,
    *,
    fusion: str = "rrf",
    known_queries: Collection[str] | None = None,
    batch_size: int = 64,
) -> tuple[Run, dict[str, Any]]:
    """Each source's top ``depth`` for ``queries``, fused when there are several.

    Returns:
        The run, and a cost / provenance record per source (for the manifest).

    Raises:
        InputError: a run file over other queries or documents, or an unknown fusion.
    """
    from retrieval_kd.candidates.bm25 import bm25_candidates
    from retrieval_kd.candidates.dense import dense_candidates
    from retrieval_kd.candidates.fusion import FUSIONS, fuse_runs
    from retrieval_kd.data import read_run, truncate_run
    from retrieval_kd.manifest import sha256_file

    if len(sources) > 1 and fusion not in FUSIONS:
        raise InputError(f"unknown fusion {fusion!r}; choose one of {', '.join(FUSIONS)}")
    runs: list[Run] = []
    records: dict[str, Any] = {}
    for source in sources:
        if source.kind == "bm25":
            run, cost = bm25_candidates(corpus, queries, k=depth)
        elif source.kind == "dense":
            run, cost = dense_candidates(
                source.target, corpus, queries, k=depth, batch_size=batch_size
            )
        else:
            every = read_run(source.target, known_queries=known_queries, known_docs=corpus)
            run = {q: docs for q, docs in truncate_run(every, depth).items() if q in queries}
            run.update({q: {} for q in queries if q not in run})
            cost = {"path": source.target, "sha256": sha256_file(source.target)}
        runs.append({q: run.get(q, {}) for q in queries})
        records[source.spec] = {"kind": source.kind, **cost}
    if len(runs) == 1:
        return runs[0], records
    fused = fuse_runs(runs, fusion, depth=depth, names=[s.spec for s in sources])
    return fused, records
