"""Strict configs: YAML files read with file-and-line errors, sections checked key by key.

Shared by ``rkd train`` and ``rkd distill`` configs: an unknown key, a missing required key or a
value of the wrong type is one ``RKDError`` naming ``section.key``.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from retrieval_kd.errors import InputError, RKDError


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file; a missing file or a syntax error is an ``InputError`` with its line."""
    path = Path(path)
    if not path.is_file():
        raise InputError("no such config file", path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise InputError(
            f"invalid YAML: {getattr(err, 'problem', None) or err}",
            path,
            None if mark is None else mark.line + 1,
        ) from None


def type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin is dict:
        return isinstance(value, Mapping)
    return isinstance(value, origin or hint)


def strict_section(cls: type, raw: Any, name: str) -> Any:
    """Build dataclass ``cls`` from mapping ``raw`` (section ``name``), strictly."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise RKDError(f"config section {name!r} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in known:
            raise RKDError(f"unknown config key '{name}.{key}'; valid keys: {', '.join(known)}")
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in raw:
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if required:
                raise RKDError(f"missing required config key '{name}.{f.name}'")
            continue
        value = raw[f.name]
        if not type_ok(value, hints[f.name]):
            raise RKDError(f"config key '{name}.{f.name}' must be {hints[f.name]}, got {value!r}")
        kwargs[f.name] = float(value) if hints[f.name] is float else value
    return cls(**kwargs)
