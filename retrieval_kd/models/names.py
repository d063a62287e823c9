"""Short names for models: ``"minilm-l6"`` stands for ``sentence-transformers/all-MiniLM-L6-v2``.

Names are case-insensitive and contain no ``/`` (so they never clash with a hub id).
"""

from __future__ import annotations

from retrieval_kd.errors import InputError

_NAMES: dict[str, str] = {
    "minilm-l6": "sentence-transformers/all-MiniLM-L6-v2",
    "minilm-l3": "sentence-transformers/paraphrase-MiniLM-L3-v2",
    "smollm2-135m": "HuggingFaceTB/SmolLM2-135M-Instruct",
}


def register_model(name: str, hub_id: str, *, overwrite: bool = False) -> None:
    """Make ``name`` resolve to ``hub_id``.

    Args:
        name: The short name (no ``/``; compared case-insensitively).
        hub_id: The hub id it stands for, ``org/name``.
        overwrite: Replace an existing name that points elsewhere instead of raising.

    Raises:
        InputError: ``name`` is empty or contains ``/``, or is taken by another hub id.
    """
    key = name.strip().lower()
    if not key or "/" in key:
        raise InputError(f"model short name {name!r} must be non-empty and contain no '/'")
    if not hub_id.strip():
        raise InputError(f"model short name {name!r}: empty hub id")
    if key in _NAMES and _NAMES[key] != hub_id and not overwrite:
        raise InputError(
            f"model short name {name!r} already stands for {_NAMES[key]}; pass overwrite=True"
        )
    _NAMES[key] = hub_id


def registered_models() -> dict[str, str]:
    """A copy of the short-name table, ``{name: hub id}``."""
    return dict(_NAMES)


def lookup_name(name: str) -> str | None:
    """The hub id a short name stands for, or None."""
    return _NAMES.get(name.strip().lower())
