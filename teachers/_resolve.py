"""Model spec -> local folder, with the record a manifest needs."""

from __future__ import annotations

from typing import Any


def resolve(spec: str) -> tuple[str, dict[str, Any]]:
    """``(local folder, identity dict)`` for a model spec (hub id, short name or folder)."""
    from retrieval_kd.models import resolve_model

    resolved = resolve_model(spec)
    return str(resolved.path), {
        "model": spec,
        "hub_id": resolved.hub_id,
        "source": resolved.source,
        "revision_or_hash": resolved.revision_or_hash,
    }
