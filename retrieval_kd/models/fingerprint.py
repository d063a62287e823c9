"""A model folder's identity for manifests: the SHA-256 of its weights file(s), cached.

Hashing a few hundred MB takes a second or so, so the per-file hashes are kept in a small JSON
file (by default ``.rkd_fingerprint.json`` in the folder) keyed by each file's relative path, size
and modification time; a changed file is hashed again, an unchanged one is not.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from retrieval_kd.errors import RKDError
from retrieval_kd.manifest import sha256_file, write_json_atomic

logger = logging.getLogger("retrieval_kd.models")

FINGERPRINT_FILE = ".rkd_fingerprint.json"
# Weight formats by preference: a folder with safetensors is identified by them alone (a hub
# snapshot may also hold .bin, ONNX or OpenVINO copies of the same weights).
WEIGHT_SUFFIX_GROUPS: tuple[tuple[str, ...], ...] = (
    (".safetensors",),
    (".bin", ".pt", ".pth"),
    (".gguf",),
    (".onnx",),
)
# Files a training checkpoint keeps beside the weights that are not model weights.
NOT_WEIGHTS = {"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt"}


def weight_files(folder: str | Path) -> list[Path]:
    """The weights files of a model folder (recursive, hidden folders skipped), sorted.

    Only the first format of ``WEIGHT_SUFFIX_GROUPS`` that occurs counts.
    """
    folder = Path(folder)
    candidates = [
        p
        for p in folder.rglob("*")
        if p.is_file()
        and not any(part.startswith(".") for part in p.relative_to(folder).parts)
        and p.name not in NOT_WEIGHTS
        and not p.name.startswith("rng_state")
    ]
    for suffixes in WEIGHT_SUFFIX_GROUPS:
        found = sorted(p for p in candidates if p.name.endswith(suffixes))
        if found:
            return found
    return []


def _load_cache(cache_file: Path) -> dict[str, dict]:
    try:
        record = json.loads(cache_file.read_text(encoding="utf-8"))
        return {entry["path"]: entry for entry in record.get("files", [])}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def model_fingerprint(path: str | Path, *, cache_file: str | Path | None = None) -> str:
    """SHA-256 (hex) identifying a model's weights.

    With one weights file this is that file's SHA-256 (what ``sha256sum`` prints); with several
    it is the SHA-256 of the lines ``"<relative path> <sha256>\\n"`` in path order.

    Args:
        path: A model folder, or a single weights file.
        cache_file: Where to keep per-file hashes; default ``<folder>/.rkd_fingerprint.json``.
            A cache that cannot be written (read-only folder) is skipped silently.

    Returns:
        64 hex characters.

    Raises:
        RKDError: ``path`` does not exist or holds no weights file.
    """
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    if not path.is_dir():
        raise RKDError(f"{path}: no such model folder")
    files = weight_files(path)
    if not files:
        suffixes = ", ".join(s for group in WEIGHT_SUFFIX_GROUPS for s in group)
        raise RKDError(f"{path}: no weights file ({suffixes}) in it: not a model folder")
    cache_path = Path(cache_file) if cache_file is not None else path / FINGERPRINT_FILE
    cached = _load_cache(cache_path)
    entries = []
    for file in files:
        rel = file.relative_to(path).as_posix()
        stat = file.stat()
        old = cached.get(rel)
        if old and old.get("size") == stat.st_size and old.get("mtime_ns") == stat.st_mtime_ns:
            digest = old["sha256"]
        else:
            digest = sha256_file(file)
        entries.append(
            {"path": rel, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": digest}
        )
    if len(entries) == 1:
        result = entries[0]["sha256"]
    else:
        lines = "".join(f"{e['path']} {e['sha256']}\n" for e in entries)
        result = hashlib.sha256(lines.encode("utf-8")).hexdigest()
    if list(cached.values()) != entries:
        try:
            write_json_atomic(cache_path, {"files": entries, "fingerprint": result})
        except OSError as err:
            logger.debug("fingerprint cache %s not written: %s", cache_path, err)
    return result
