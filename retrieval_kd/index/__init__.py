"""Dense indexes over a student's vectors: FAISS types by name, save/load, chunked builds.

- :mod:`~retrieval_kd.index.factory`: index names -> FAISS factory strings and sizing rules.
- :mod:`~retrieval_kd.index.dense`: :class:`DenseIndex` (string ids, search, save/load).
- :mod:`~retrieval_kd.index.storage`: the folder format and its integrity checks.
- :mod:`~retrieval_kd.index.build`: chunked, resumable encode -> train -> add -> save.
- :mod:`~retrieval_kd.index.report`: ANN-vs-exact sweeps, Markdown table and plot.
- :mod:`~retrieval_kd.index.gpu`: guarded moves to and from GPUs.
"""

from __future__ import annotations

from retrieval_kd.index.build import build_index, build_index_from_chunks
from retrieval_kd.index.dense import DenseIndex
from retrieval_kd.index.factory import INDEX_TYPES, IndexPlan, plan_index
from retrieval_kd.index.report import (
    SweepRow,
    ann_report,
    fastest_at_recall,
    plot_report,
    report_markdown,
)
from retrieval_kd.index.storage import IndexMismatchError

__all__ = [
    "INDEX_TYPES",
    "DenseIndex",
    "IndexMismatchError",
    "IndexPlan",
    "SweepRow",
    "ann_report",
    "build_index",
    "build_index_from_chunks",
    "fastest_at_recall",
    "plan_index",
    "plot_report",
    "report_markdown",
]
