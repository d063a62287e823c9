"""Fusing candidate runs: reciprocal rank fusion (ranx) or the union of every source's top-k.

RRF (Cormack et al. 2009) scores a document ``sum_r 1 / (k + rank_r(d))`` over the runs that list
it (ranx's ``fuse(method="rrf")``, ``k = 60``); ``rrf`` keeps the fused top ``depth``. ``union``
keeps every document of every run's top ``depth`` (up to ``n_runs x depth`` per query), ordered by
the same RRF score, for a teacher that should see every source's candidates.

Ranks come from the project's one ordering rule (score descending, ties by doc id descending,
``retrieval_kd.data.ranked_doc_ids``): each run is turned into rank scores before ranx sees it,
so fused scores do not depend on how ties were stored.

Example:
    >>> bm25 = {"q": {"a": 3.0, "b": 2.0}}
    >>> dense = {"q": {"c": 0.9, "a": 0.8}}
    >>> sorted(fuse_runs([bm25, dense], "union", depth=2)["q"])
    ['a', 'b', 'c']
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

from retrieval_kd.data.runs import ranked_doc_ids
from retrieval_kd.data.types import Run
from retrieval_kd.errors import InputError

FUSIONS = ("rrf", "union")
RRF_K = 60
_NOTHING = "\x00none"  # stands in for "no document" where a source returned none


def _as_ranks(run: Run, depth: int | None) -> Run:
    """Each query's top ``depth`` documents scored ``-rank`` (1-based): no ties left."""
    return {
        q: {d: -float(r) for r, d in enumerate(ranked_doc_ids(docs, depth), start=1)}
        for q, docs in run.items()
        if docs
    }


def check_same_queries(runs: Sequence[Run], names: Sequence[str] | None = None) -> None:
    """Refuse to fuse runs over different query sets (one would silently lose queries).

    Raises:
        InputError: the query ids differ; names the runs and a few of the differing ids.
    """
    names = list(names or [f"run {i + 1}" for i in range(len(runs))])
    first = set(runs[0])
    for name, run in zip(names[1:], runs[1:], strict=True):
        if set(run) != first:
            only = sorted(first ^ set(run))
            raise InputError(
                f"cannot fuse runs over different query sets: {names[0]} and {name} differ in "
                f"{len(only)} query id(s), e.g. {only[:5]}"
            )


def fuse_runs(
    runs: Sequence[Run],
    method: str = "rrf",
    depth: int | None = None,
    names: Sequence[str] | None = None,
    rrf_k: int = RRF_K,
) -> Run:
    """Fuse candidate runs of the same queries (module docstring).

    Args:
        runs: two or more runs (one is returned truncated to ``depth``).
        method: ``rrf`` (fused top ``depth``) or ``union`` (every run's top ``depth``).
        depth: documents taken from each run, and kept by ``rrf`` (None: all).
        names: names of the runs, for error messages.
        rrf_k: RRF's constant.

    Raises:
        InputError: an unknown method, no run, or runs over different query sets.
    """
    from ranx import Run as RanxRun
    from ranx import fuse

    if method not in FUSIONS:
        raise InputError(f"unknown fusion {method!r}; choose one of {', '.join(FUSIONS)}")
    if not runs:
        raise InputError("no run to fuse")
    check_same_queries(runs, names)
    ranked = [_as_ranks(run, depth) for run in runs]
    if len(runs) == 1:
        return {q: {d: runs[0][q][d] for d in docs} for q, docs in ranked[0].items()}
    queries = sorted({q for run in ranked for q in run})
    # ranx fuses runs of the same queries only: a query a source found nothing for gets a
    # placeholder document there, which changes no other rank and is dropped after fusion
    filled = [{q: run.get(q) or {_NOTHING: 0.0} for q in queries} for run in ranked]
    with warnings.catch_warnings():  # numba's note on ranx's integer casts, not ours to fix
        warnings.simplefilter("ignore")
        fused = fuse([RanxRun(r) for r in filled], norm=None, method="rrf", params={"k": rrf_k})
    fused = {
        q: {d: s for d, s in docs.items() if d != _NOTHING} for q, docs in fused.to_dict().items()
    }
    out: Run = {}
    for q in queries:
        scores = {d: float(s) for d, s in fused.get(q, {}).items()}
        if method == "rrf" and depth is not None:
            scores = {d: scores[d] for d in ranked_doc_ids(scores, depth)}
        out[q] = scores
    return out
