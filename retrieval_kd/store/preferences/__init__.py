"""The preference store: LLM pairwise preferences and rankings as data, filled resumably.

A pairwise teacher gives ``P(i > j)`` for pairs of a query's candidates, a listwise teacher an
order of them; neither gives a score per passage. Both are kept as they come, one row per query:

- ``(query_id, status, doc_ids, pair_i, pair_j, prob)``: for ``target = "pairwise"``, ``doc_ids``
  are the candidates in first-stage order and ``prob[p] = P(doc_ids[pair_i[p]] >
  doc_ids[pair_j[p]])``; for ``target = "ranking"``, ``doc_ids`` is the teacher's order, best
  first, and the pair columns are empty;
- the query's cost (``forward_passes``, ``tokens_in``, ``tokens_out``, ``wall_s``) and the repairs
  its output needed (``invalid_ids``, ``duplicate_ids``, ``missing_ids``, ``unparsed_windows``);
- ``status`` ``"ok"``, or ``"skipped: <reason>"`` for a query the teacher could not judge (a
  prompt that cannot be built, say): skipped queries are kept, so that a resumed run does not
  retry them and the manifest counts them.

Shards ``pref-r{rank:02d}-{seq:06d}.parquet`` are written to a hidden temporary file and renamed
atomically, as in the score store; a run killed at any point and re-run judges only the queries
not yet in a shard. ``manifest.json`` (teacher, candidates, counts, repairs, cost in total and per
query) appears once every planned query is stored. :func:`preferences_to_scores` derives an
ordinary :class:`~retrieval_kd.store.ScoreStore` (Bradley-Terry or win-rate aggregate of the
pairs, or rank-derived scores of the orders) so that every score loss can use the targets.

Modules: :mod:`.records` (row format, shards, read view), :mod:`.collect` (the filling loop),
:mod:`.to_scores` (preferences -> score store).
"""

from __future__ import annotations

from retrieval_kd.store.preferences.collect import collect_preferences
from retrieval_kd.store.preferences.records import (
    COST_KEYS,
    REPAIR_KEYS,
    SCHEMA,
    TARGETS,
    PreferenceRecord,
    PreferenceStore,
    PreferenceTeacher,
    write_shard,
)
from retrieval_kd.store.preferences.to_scores import preferences_to_scores

__all__ = [
    "COST_KEYS",
    "REPAIR_KEYS",
    "SCHEMA",
    "TARGETS",
    "PreferenceRecord",
    "PreferenceStore",
    "PreferenceTeacher",
    "collect_preferences",
    "preferences_to_scores",
    "write_shard",
]
