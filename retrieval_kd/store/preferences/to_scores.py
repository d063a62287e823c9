"""Scores from preferences: Bradley-Terry / win-rate aggregates of pairs, rank-derived scores of
orders, written as an ordinary score store so that every score loss can use them."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import numpy as np

from retrieval_kd.data.types import Qrels
from retrieval_kd.errors import RKDError
from retrieval_kd.losses.preference import bradley_terry, rank_scores, win_rate
from retrieval_kd.manifest import MANIFEST_NAME, fingerprint, read_manifest, write_manifest
from retrieval_kd.store.preferences.records import PreferenceRecord, PreferenceStore
from retrieval_kd.store.score_store import ScoredQuery, ScoreStore, ShardWriter


def preferences_to_scores(
    store: PreferenceStore,
    out_dir: str | Path,
    *,
    aggregate: str = "bradley_terry",
    transform: str = "neg_rank",
    k: float = 60.0,
    prior: float = 0.1,
    qrels: Qrels | None = None,
    query_ids: Collection[str] | None = None,
) -> ScoreStore:
    """Derive a ScoreStore from a complete preference store, for losses that need scores.

    Pairwise targets: the ``aggregate`` per document (``"bradley_terry"`` log-strength or
    ``"win_rate"``) over the documents that appear in at least one pair. Rankings: the
    ``transform`` of each rank (``"neg_rank"``: -rank, ``"reciprocal_rank"``: 1/(k + rank)).
    The manifest names the teacher with its ``score_transform`` and carries the LLM cost.
    ``out_dir`` must be new, empty or an earlier derivation (which is replaced). With
    ``query_ids``, only those queries are kept (e.g. a training split of the judged queries).

    Raises:
        RKDError: the preference store is unfinished, or ``out_dir`` holds another store.
    """
    source = store.manifest
    if source is None:
        raise RKDError(f"preference store {store.folder} is unfinished (no manifest.json)")
    if source["target"] == "pairwise":
        score_transform = {"aggregate": aggregate, "prior": prior}
        if aggregate not in ("bradley_terry", "win_rate"):
            raise RKDError(f"unknown aggregate {aggregate!r}")
    else:
        score_transform = {"rank_transform": transform, "k": k}
    rows = []
    keep = None if query_ids is None else set(query_ids)
    for record in store:
        if keep is not None and record.query_id not in keep:
            continue
        docs, scores = _scores(record, source["target"], aggregate, transform, k, prior)
        labels = None
        if qrels is not None:
            labels = [qrels.get(record.query_id, {}).get(d, 0) for d in docs]
        rows.append(ScoredQuery(record.query_id, docs, scores, labels))
    folder = Path(out_dir)
    kept = [(r.query_id, r.labels) for r in rows]  # the queries, and labels when given
    settings_fp = fingerprint([source["settings_fingerprint"], score_transform, kept])
    if folder.is_dir() and any(folder.iterdir()):
        previous = read_manifest(folder) if (folder / MANIFEST_NAME).is_file() else {}
        if "derived_from" not in previous:
            raise RKDError(f"{folder} is not empty and not a derived score store: refusing")
        if previous.get("settings_fingerprint") == settings_fp:
            return ScoreStore(folder)
        for path in folder.iterdir():
            if path.is_file():
                path.unlink()
    ShardWriter(folder).write(rows)
    derived = ScoreStore(folder)
    write_manifest(
        folder,
        {
            "kind": "score_store",
            "settings_fingerprint": settings_fp,
            "derived_from": {"folder": str(store.folder), "kind": "preference_store"},
            "teacher": {**source["teacher"], "score_transform": score_transform},
            "candidate_source": source["candidate_source"],
            "labels": "qrels grade, 0 = unjudged" if qrels is not None else None,
            "counts": {"queries": len(derived), "pairs": derived.num_pairs},
            "cost": source["cost"],
        },
    )
    return derived


def _scores(
    record: PreferenceRecord, target: str, aggregate: str, transform: str, k: float, prior: float
) -> tuple[list[str], np.ndarray]:
    if target == "ranking":
        return list(record.doc_ids), rank_scores(len(record.doc_ids), transform, k)
    n = len(record.doc_ids)
    if aggregate == "bradley_terry":
        values = bradley_terry(n, record.pairs, record.probs, prior=prior)
    else:
        values = win_rate(n, record.pairs, record.probs)
    seen = sorted(set(np.asarray(record.pairs).reshape(-1).tolist()))
    return [record.doc_ids[i] for i in seen], values[seen].astype(np.float32)
