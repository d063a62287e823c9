"""Progress bars that one switch (``--quiet`` or ``RKD_QUIET=1``) turns off everywhere."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_quiet: bool | None = None


def set_quiet(quiet: bool) -> None:
    """Turn every progress bar of this process off (``True``) or on (``False``)."""
    global _quiet
    _quiet = quiet
    if quiet:
        os.environ["RKD_QUIET"] = "1"  # child processes (torchrun workers) inherit it


def is_quiet() -> bool:
    """Whether progress bars are off: ``set_quiet`` wins, else ``RKD_QUIET``."""
    if _quiet is not None:
        return _quiet
    return os.environ.get("RKD_QUIET", "") not in ("", "0", "false", "False")


def progress(
    iterable: Iterable[T], desc: str, total: int | None = None, unit: str = "it"
) -> Iterator[T]:
    """Wrap ``iterable`` in a tqdm bar unless quiet."""
    return iter(tqdm(iterable, desc=desc, total=total, unit=unit, disable=is_quiet()))
