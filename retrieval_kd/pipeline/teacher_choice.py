"""Pick the teacher: the configured one when it can be had, else the first resolvable fallback.

Nothing is loaded here, only resolved (hub id -> local folder), so a teacher that cannot be
had is skipped in a second or two and the run says which teacher it used and why.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any

from retrieval_kd.errors import RKDError

logger = logging.getLogger(__name__)
ENV_PREFIX = "env:"


def _model_specs(spec: Mapping[str, Any]) -> Iterator[str]:
    if spec.get("kind") == "ensemble":
        for member in spec.get("members") or []:
            yield from _model_specs(member)
    elif spec.get("model"):
        yield str(spec["model"])


def _stored_paths(spec: Mapping[str, Any]) -> Iterator[str]:
    if spec.get("kind") == "ensemble":
        for member in spec.get("members") or []:
            yield from _stored_paths(member)
    elif spec.get("kind") == "scores":
        yield str(spec.get("path") or "")


def check_resolvable(spec: str) -> None:
    """Resolve every model a teacher spec names and find every stored-scores path it reads;
    raise ``RKDError`` if one cannot be had."""
    from pathlib import Path

    from retrieval_kd.models import resolve_model
    from teachers import parse_teacher_spec

    parsed = parse_teacher_spec(spec)
    for model in _model_specs(parsed):
        resolve_model(model)
    for path in _stored_paths(parsed):
        if not path or not Path(path).exists():
            raise RKDError(f"stored teacher scores {path!r}: no such file or folder")


def teacher_candidates(configured: str, fallbacks: list[str], override: str | None) -> list[str]:
    """The specs to try, in order: ``override`` alone if given, else configured + fallbacks.

    A fallback ``env:NAME`` stands for the spec in environment variable ``NAME`` (skipped when
    unset).
    """
    if override:
        return [override]
    out = []
    for spec in [configured, *fallbacks]:
        if spec.startswith(ENV_PREFIX):
            spec = os.environ.get(spec[len(ENV_PREFIX) :], "")
        if spec and spec not in out:
            out.append(spec)
    return out


def choose_teacher(
    configured: str, fallbacks: list[str], override: str | None = None
) -> tuple[str, list[str]]:
    """``(the teacher spec to use, why each earlier candidate was skipped)``.

    Raises:
        RKDError: no candidate resolves (each reason listed).
    """
    skipped: list[str] = []
    for spec in teacher_candidates(configured, fallbacks, override):
        try:
            check_resolvable(spec)
        except RKDError as err:
            full = " ".join(line.strip() for line in str(err).splitlines() if line.strip())
            first = str(err).splitlines()[0].removesuffix(" Tried:").strip()
            skipped.append(f"{spec}: {first}")
            logger.warning("teacher %s cannot be had: %s", spec, full)
            continue
        return spec, skipped
    raise RKDError("no teacher could be resolved:\n  " + "\n  ".join(skipped))
