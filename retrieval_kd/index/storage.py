"""The on-disk form of a dense index: ``index.faiss`` + ``ids.txt`` + ``manifest.json``.

Writing replaces each file atomically (temporary file + ``os.replace``) and writes the manifest
last, after deleting any old one: a folder without a manifest is an unfinished save. Reading
checks each file against the manifest *before* FAISS reads it, because FAISS may raise an
obscure error, or crash, on a truncated or corrupted file. The check is proportionate to the
cost of a load (``verify``):

- ``"sample"`` (default): the size and a hash of 16 sampled 64 KiB blocks
  (:func:`~retrieval_kd.manifest.sample_sha256`): at most 1 MiB read, whatever the size;
- ``"full"`` (or ``True``): the size and the SHA-256 of every byte (seconds for a multi-GB file);
- ``"size"`` (or ``False``): the size only.

The index itself is memory-mapped where FAISS allows (``IO_FLAG_MMAP_IFC``: flat, IVF and HNSW
storage), so a large index costs page cache that the OS can reclaim and share between
processes, not a private copy; a memory-mapped index is read-only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import faiss

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.manifest import (
    MANIFEST_NAME,
    file_record,
    read_manifest,
    sample_sha256,
    sha256_file,
    write_manifest,
)

VERIFY = ("sample", "full", "size")
INDEX_FILE = "index.faiss"
IDS_FILE = "ids.txt"
KIND = "dense_index"


class IndexMismatchError(RKDError):
    """An index used with another student checkpoint or with vectors of another dimension."""


def write_index_folder(
    folder: str | Path, index: faiss.Index, ids: list[str], fields: dict[str, Any]
) -> dict[str, Any]:
    """Write a CPU FAISS index, its ids and a manifest (``fields`` + file records).

    Returns:
        The manifest fields written (without the who/when fields ``write_manifest`` adds).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MANIFEST_NAME).unlink(missing_ok=True)  # half-written = no manifest
    index_path, ids_path = folder / INDEX_FILE, folder / IDS_FILE
    tmp = folder / f".{INDEX_FILE}.tmp"
    faiss.write_index(index, str(tmp))
    os.replace(tmp, index_path)
    tmp = folder / f".{IDS_FILE}.tmp"
    tmp.write_text("".join(i + "\n" for i in ids), encoding="utf-8")
    os.replace(tmp, ids_path)
    records = {role: file_record(path) for role, path in (("index", index_path), ("ids", ids_path))}
    manifest = {
        "kind": KIND,
        **fields,
        "count": int(index.ntotal),
        "dim": int(index.d),
        "files": records,
        "size_on_disk_bytes": records["index"]["bytes"] + records["ids"]["bytes"],
    }
    write_manifest(folder, manifest)
    return manifest


def read_index_folder(
    folder: str | Path,
    expected_student_hash: str | None = None,
    expected_dim: int | None = None,
    verify: bool | str = "sample",
    mmap: bool = True,
) -> tuple[dict[str, Any], faiss.Index, list[str], bool]:
    """Check and read an index folder; returns ``(manifest, CPU FAISS index, ids, mapped)``.

    ``verify``: ``"sample"``, ``"full"`` or ``"size"`` (module docstring); ``mmap``: memory-map
    the index where FAISS can (``mapped`` says whether it did).

    Raises:
        InputError: no manifest, a manifest of another kind or missing fields, or files that
            are missing, truncated, corrupted or unreadable by FAISS.
        IndexMismatchError: built from another student checkpoint or of another dimension.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.get("kind") != KIND:
        raise InputError(f"not a dense index (kind={manifest.get('kind')!r})", folder)
    _check_expected(manifest, expected_student_hash, expected_dim, folder)
    try:
        index_path = _checked_file(folder, manifest["files"]["index"], verify)
        ids_path = _checked_file(folder, manifest["files"]["ids"], verify)
        count, dim = manifest["count"], manifest["dim"]
    except (KeyError, TypeError) as err:
        raise InputError(f"manifest.json lacks or mangles field {err}", folder) from None
    index, mapped = read_faiss(index_path, mmap)
    ids = ids_path.read_text(encoding="utf-8").splitlines()
    if (index.d, index.ntotal, len(ids)) != (dim, count, count):
        raise InputError(
            f"index holds {index.ntotal} {index.d}-d vectors and {len(ids)} ids, "
            f"manifest says {count} {dim}-d",
            index_path,
        )
    return manifest, index, ids, mapped


def read_faiss(path: Path, mmap: bool = True) -> tuple[faiss.Index, bool]:
    """A FAISS index file, memory-mapped when asked and FAISS allows it; ``(index, mapped)``.

    Raises:
        InputError: FAISS cannot read the file.
    """
    if mmap:
        try:
            return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC), True
        except RuntimeError:
            pass  # an index type FAISS cannot map: read it whole below
    try:
        return faiss.read_index(str(path)), False
    except RuntimeError as err:
        reason = str(err).strip().splitlines()[-1]
        raise InputError(f"FAISS cannot read the index: {reason}", path) from None


def _check_expected(
    manifest: dict[str, Any], student_hash: str | None, dim: int | None, folder: Path
) -> None:
    """Refuse an index made for another student checkpoint or dimension."""
    recorded = manifest.get("student_hash")
    if student_hash is not None and recorded != student_hash:
        raise IndexMismatchError(
            f"{folder}: index was built from student {recorded!r}, not {student_hash!r}; "
            "rebuild the index with this student"
        )
    if dim is not None and manifest.get("dim") != dim:
        raise IndexMismatchError(
            f"{folder}: index holds {manifest.get('dim')}-d vectors, expected {dim}-d"
        )


def verify_mode(verify: bool | str) -> str:
    """``"sample"``, ``"full"`` or ``"size"`` (``True`` = full, ``False`` = size).

    Raises:
        RKDError: another value.
    """
    mode = ("full" if verify else "size") if isinstance(verify, bool) else verify
    if mode not in VERIFY:
        raise RKDError(f"verify must be one of {VERIFY} (or True / False), got {verify!r}")
    return mode


def _checked_file(folder: Path, record: dict[str, Any], verify: bool | str) -> Path:
    """The path of a file the manifest lists, after checking it (:func:`verify_mode`); a
    manifest written before sampled hashes were recorded gets the size check under
    ``"sample"``."""
    mode = verify_mode(verify)
    path = folder / record["name"]
    if not path.is_file():
        raise InputError("missing file listed in manifest.json", path)
    size = path.stat().st_size
    if size != record["bytes"]:
        raise InputError(
            f"file is {size} bytes, manifest says {record['bytes']}: truncated or replaced", path
        )
    if mode == "full" and sha256_file(path) != record["sha256"]:
        raise InputError("SHA-256 differs from manifest.json: the file is corrupted", path)
    if mode == "sample" and "sample_sha256" in record:
        if sample_sha256(path) != record["sample_sha256"]:
            raise InputError(
                "sampled SHA-256 differs from manifest.json: the file is corrupted", path
            )
    return path
