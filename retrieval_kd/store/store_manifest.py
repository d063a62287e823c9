"""Manifests of a score store: one part per writer rank, merged into ``manifest.json``.

Every scoring process (rank) keeps its own ``manifest-rNN.json`` part, rewritten atomically after
each shard it writes. A part holds the run's settings (teacher, candidate source, depth), their
fingerprint, whether the rank's slice is complete, and one cost record per session (a session
being one run of the process, killed or not), so the cost of an interrupted run is kept too.

``manifest.json`` is written only once every rank ``0..world_size-1`` has a complete part with the
current settings: by rank 0 after a barrier when ``torch.distributed`` is initialised, otherwise
by whichever rank finishes last (each rank tries after finishing; the merge is a pure function of
the parts and the shards, so two ranks racing write the same content). Without ``manifest.json`` a
store is unfinished: read it (``ScoreStore``) if you like, but a stage that depends on it should
wait for the manifest. Costs are summed over every part in the folder, including parts of earlier
runs with another world size, since all their scoring went into this store.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.manifest import MANIFEST_NAME, read_manifest, write_json_atomic, write_manifest

PART_RE = re.compile(r"^manifest-r(\d+)\.json$")
FORMAT_VERSION = 1
#: ``describe()`` keys that do not change the scores, ignored when checking the teacher identity.
VOLATILE_TEACHER_KEYS = frozenset(
    {
        "device",
        "batch_size",
        "num_workers",
        "max_batch_tokens",
        "prefix_sharing",  # same scores up to rounding, like another batch size
        "row_tokens",
    }
)


def part_path(folder: str | Path, rank: int) -> Path:
    """Path of rank ``rank``'s manifest part."""
    return Path(folder) / f"manifest-r{rank:02d}.json"


def read_parts(folder: str | Path) -> dict[int, dict[str, Any]]:
    """Every manifest part of the folder, by rank; a corrupt part is an ``InputError``."""
    parts = {}
    for path in sorted(Path(folder).iterdir()):
        if m := PART_RE.match(path.name):
            try:
                parts[int(m.group(1))] = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as err:
                raise InputError(f"corrupt manifest part: {err.msg}", path, err.lineno) from None
    return parts


def write_part(folder: str | Path, rank: int, part: dict[str, Any]) -> Path:
    """Write rank ``rank``'s part atomically."""
    return write_json_atomic(part_path(folder, rank), part)


def teacher_identity(describe: dict[str, Any]) -> dict[str, Any]:
    """The part of a scorer's ``describe()`` that decides its scores (JSON-normalised)."""
    return _without_volatile(json.loads(json.dumps(describe, sort_keys=True, default=str)))


def _without_volatile(value: Any) -> Any:
    """``value`` without volatile keys at any depth (an ensemble's members describe their own
    device and batch size: an ensemble scored on a GPU must resume on a CPU)."""
    if isinstance(value, dict):
        return {k: _without_volatile(v) for k, v in value.items() if k not in VOLATILE_TEACHER_KEYS}
    if isinstance(value, list):
        return [_without_volatile(v) for v in value]
    return value


def check_same_teacher(folder: str | Path, describe: dict[str, Any]) -> None:
    """Refuse to add scores of another teacher to a store (its manifest or parts name one).

    Raises:
        RKDError: the store was (partly) scored by a teacher with another identity.
    """
    mine = teacher_identity(describe)
    folder = Path(folder)
    records = list(read_parts(folder).values())
    if (folder / MANIFEST_NAME).is_file():
        records.append(read_manifest(folder))
    for record in records:
        theirs = teacher_identity(record.get("teacher", {}))
        if theirs != mine:
            diff = sorted(k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
            raise RKDError(
                f"score store {folder} holds scores of another teacher "
                f"(differs in {', '.join(diff)}: {theirs} vs {mine}); "
                "score into a new folder instead of mixing teachers"
            )


def merged_cost(parts: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Sum the session costs of every part: pairs, teacher seconds, peak memory."""
    sessions = [s for part in parts.values() for s in part.get("sessions", [])]
    pairs = sum(s.get("pairs_scored", 0) for s in sessions)
    wall = sum(s.get("wall_s", 0.0) for s in sessions)
    return {
        "pairs_scored": pairs,
        "queries_scored": sum(s.get("queries_scored", 0) for s in sessions),
        "empty_passages": sum(s.get("empty_passages", 0) for s in sessions),
        "wall_s_summed_over_processes": round(wall, 3),
        "pairs_per_s_per_process": round(pairs / wall, 2) if wall > 0 else None,
        "peak_memory_mb": max((s.get("peak_memory_mb", 0.0) for s in sessions), default=0.0),
        "sessions": len(sessions),
        "ranks": sorted(parts),
    }


def try_merge(folder: str | Path, world_size: int, settings_fingerprint: str, store: Any) -> bool:
    """Write ``manifest.json`` if ranks ``0..world_size-1`` all finished the current settings.

    Args:
        folder: the store folder.
        world_size: number of ranks of the current run.
        settings_fingerprint: fingerprint of the current run's settings.
        store: a ``ScoreStore`` of the folder (read after every rank finished), for the counts.

    Returns:
        Whether the manifest was written.
    """
    parts = read_parts(folder)
    current = [parts.get(r) for r in range(world_size)]
    if any(
        p is None or not p.get("complete") or p.get("settings_fingerprint") != settings_fingerprint
        for p in current
    ):
        return False
    first = current[0]
    assert first is not None
    store.reload()
    cost = merged_cost(parts)
    write_manifest(
        folder,
        {
            "kind": "score_store",
            "format_version": FORMAT_VERSION,
            "settings_fingerprint": settings_fingerprint,
            "teacher": first["teacher"],
            "candidate_source": first["candidate_source"],
            "labels": first.get("labels"),
            "world_size": world_size,
            "counts": {
                "queries": len(store),
                "pairs": store.num_pairs,
                "shards": len(store.shard_paths),
                "empty_passages": cost["empty_passages"],
            },
            "cost": cost,
        },
    )
    return True
