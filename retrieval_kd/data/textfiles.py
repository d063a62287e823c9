"""Line-oriented readers that report the file and line of any malformed record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrieval_kd.errors import InputError


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file.

    Raises:
        InputError: a line that is not a JSON object (names the file and line).
    """
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise InputError(
                    f"malformed JSON ({err.msg} at column {err.colno})", path, line_number
                ) from None
            if not isinstance(record, dict):
                raise InputError("expected a JSON object per line", path, line_number)
            yield line_number, record


def iter_tsv(path: str | Path, skip_header: str | None = None) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line_number, fields)`` for each non-blank line of a tab-separated file.

    Args:
        path: the file.
        skip_header: if the first line starts with this text, it is skipped.
    """
    path = Path(path)
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            if line_number == 1 and skip_header is not None and line.startswith(skip_header):
                continue
            yield line_number, line.split("\t")


def require_field(record: dict[str, Any], key: str, path: str | Path, line: int) -> str:
    """``record[key]`` as a string, or an InputError naming the missing field."""
    if key not in record or record[key] is None:
        raise InputError(f"missing field {key!r}", path, line)
    value = record[key]
    if not isinstance(value, (str, int)):
        raise InputError(f"field {key!r} must be a string, got {type(value).__name__}", path, line)
    return str(value)
