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


SAMPLE_BLOCKS = 16
SAMPLE_BLOCK_BYTES = 1 << 16


def sample_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's size and 16 evenly spaced 64 KiB blocks (first and last
    included): at most 1 MiB read whatever the file's size.

    A cheap integrity check for multi-GB index files, recorded at write and compared on every
    load: it catches truncation, a replaced file and damage to the header or the sampled
    blocks; :func:`sha256_file` (the full hash, on request) catches everything.
    """
    size = Path(path).stat().st_size
    digest = hashlib.sha256(str(size).encode())
    last = max(0, size - SAMPLE_BLOCK_BYTES)
    starts = sorted({round(i * last / (SAMPLE_BLOCKS - 1)) for i in range(SAMPLE_BLOCKS)})
    with open(path, "rb") as handle:
        for start in starts:
            handle.seek(start)
            digest.update(handle.read(SAMPLE_BLOCK_BYTES))
    return digest.hexdigest()


def file_record(path: str | Path) -> dict[str, Any]:
    """What a manifest records of a file it lists: name, bytes, full and sampled SHA-256."""
    path = Path(path)
    return {
        "name": path.name,
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "sample_sha256": sample_sha256(path),
    }


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
    """Peak resident memory of this process, in MiB, since the innermost open :func:`measure`
    block began (on Linux, where the peak can be reset), else since the process started
    (Linux ``ru_maxrss`` is KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def _reset_peak_memory() -> bool:
    """Reset the process's peak resident memory to its current size (Linux ``clear_refs`` 5,
    which ``ru_maxrss`` and ``VmHWM`` both read); False where the kernel does not allow it."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def _cuda_in_use() -> bool:
    torch = sys.modules.get("torch")  # never import torch just to measure
    return torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()


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


#: Peaks of the measure() blocks open now, innermost last (a stage inside a stage).
_OPEN_BLOCKS: list[dict[str, float]] = []


@contextmanager
def measure() -> Iterator[dict[str, Any]]:
    """Time a block and measure its own peak memory.

    On exit the yielded dict holds ``wall_s``, ``peak_memory_mb`` and ``peak_memory_scope``:
    ``"block"`` where the process's peak could be reset when the block began (Linux), so the
    figure is this block's own peak and not the largest of every earlier stage;
    ``"process"`` elsewhere (the process's peak so far). With CUDA in use it also holds
    ``peak_gpu_memory_mb`` (``torch.cuda.max_memory_allocated``, reset likewise). A block
    nested in another passes its peak up, so the outer block's peak covers it.

    Example:
        >>> with measure() as cost:
        ...     _ = sum(range(10))
        >>> sorted(cost)
        ['peak_memory_mb', 'peak_memory_scope', 'wall_s']
    """
    cost: dict[str, Any] = {}
    if _OPEN_BLOCKS:  # the enclosing block's peak so far, before it is reset
        _OPEN_BLOCKS[-1]["inner"] = max(_OPEN_BLOCKS[-1]["inner"], peak_memory_mb())
    scope = "block" if _reset_peak_memory() else "process"
    gpu = _cuda_in_use()
    if gpu:
        sys.modules["torch"].cuda.reset_peak_memory_stats()
    block = {"inner": 0.0}
    _OPEN_BLOCKS.append(block)
    start = time.perf_counter()
    try:
        yield cost
    finally:
        _OPEN_BLOCKS.pop()
        peak = max(peak_memory_mb(), block["inner"])
        if _OPEN_BLOCKS:
            _OPEN_BLOCKS[-1]["inner"] = max(_OPEN_BLOCKS[-1]["inner"], peak)
        cost["wall_s"] = round(time.perf_counter() - start, 3)
        cost["peak_memory_mb"] = round(peak, 1)
        cost["peak_memory_scope"] = scope
        if gpu or _cuda_in_use():
            torch = sys.modules["torch"]
            cost["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
