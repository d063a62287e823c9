"""Errors that the CLI turns into one clear message instead of a traceback."""

from __future__ import annotations

from pathlib import Path


class RKDError(Exception):
    """Base class of every error retrieval_kd raises on purpose (bad input, bad config, ...)."""


class InputError(RKDError):
    """Bad input data: names the file, the line (1-based) when known, and what is wrong.

    Example:
        >>> str(InputError("qrels has 2 fields, expected 3 or 4", path="q.tsv", line=7))
        'q.tsv:7: qrels has 2 fields, expected 3 or 4'
    """

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = self.path if line is None else f"{self.path}:{line}"
            where += ": "
        super().__init__(where + message)
