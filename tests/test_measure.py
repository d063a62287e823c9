"""``measure()``: each block reports its own peak memory, not the process's largest so far."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from retrieval_kd.manifest import measure

LINUX_RESET = sys.platform.startswith("linux")


def _hold(mb: int) -> float:
    block = np.ones(mb * 2**20 // 8)  # touched pages: resident
    return float(block[::4096].sum())


@pytest.mark.skipif(not LINUX_RESET, reason="the peak can be reset on Linux only")
def test_a_stage_after_a_big_one_reports_its_own_small_peak() -> None:
    with measure() as big:
        _hold(400)
    with measure() as small:
        _hold(8)
    assert big["peak_memory_scope"] == small["peak_memory_scope"] == "block"
    assert big["peak_memory_mb"] - small["peak_memory_mb"] > 300  # not "max so far"


@pytest.mark.skipif(not LINUX_RESET, reason="the peak can be reset on Linux only")
def test_an_outer_block_covers_the_peaks_of_its_inner_blocks() -> None:
    with measure() as outer:
        _hold(300)  # before the inner block: its reset must not lose this
        with measure() as inner:
            _hold(8)
    assert outer["peak_memory_mb"] - inner["peak_memory_mb"] > 200
    with measure() as outer:
        with measure() as inner:
            _hold(300)
    assert outer["peak_memory_mb"] >= inner["peak_memory_mb"] > 300
