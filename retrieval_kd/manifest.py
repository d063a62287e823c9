"""Artefact folders: every stage writes a folder with a ``manifest.json``.

A manifest records what made the artefact (inputs with content hashes, settings), how long it
took and the peak memory. ``fingerprint`` of inputs + settings decides whether a stage's
artefact can be reused instead of recomputed.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from retrieval_kd.errors import InputError

MANIFEST_NAME = "manifest.json"


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks (constant memory)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(obj: Any) -> str:
    """Stable short hash of a JSON-serialisable object (keys sorted): a settings' identity."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    """Write JSON to ``path`` through a temporary file and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(obj, handle, indent=2, sort_keys=True, default=str)
            handle.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def peak_memory_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux ``ru_maxrss`` is KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def write_manifest(folder: str | Path, manifest: dict[str, Any]) -> Path:
    """Write ``folder/manifest.json`` atomically, adding who/when/where fields."""
    from retrieval_kd import __version__

    record = {
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "retrieval_kd_version": __version__,
        "python": platform.python_version(),
        "host": platform.node(),
        **manifest,
    }
    return write_json_atomic(Path(folder) / MANIFEST_NAME, record)


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """Read ``folder/manifest.json``; a missing or corrupt one is an ``InputError``."""
    path = Path(folder) / MANIFEST_NAME
    if not path.is_file():
        raise InputError("no manifest.json: not an artefact folder (or an unfinished one)", path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise InputError(f"corrupt manifest: {err.msg}", path, err.lineno) from None


@contextmanager
def measure() -> Iterator[dict[str, float]]:
    """Time a block; on exit the yielded dict holds ``wall_s`` and ``peak_memory_mb``.

    Example:
        >>> with measure() as cost:
        ...     _ = sum(range(10))
        >>> sorted(cost)
        ['peak_memory_mb', 'wall_s']
    """
    cost: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield cost
    finally:
        cost["wall_s"] = round(time.perf_counter() - start, 3)
        cost["peak_memory_mb"] = round(peak_memory_mb(), 1)
