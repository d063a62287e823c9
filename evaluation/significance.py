"""Paired significance tests between two runs' per-query scores.

- ``paired_t_test``: ranx's two-sided paired Student t-test
  (``ranx.statistical_tests.paired_student_t_test``, i.e. ``scipy.stats.ttest_rel``).
- ``fisher_randomization_test``: the same test as ranx's
  ``ranx.statistical_tests.fisher_randomization_test`` (Smucker et al., CIKM 2007: swap each
  query's pair of scores at random, count how often the absolute difference of means is at
  least the observed one), drawn with a seeded NumPy generator. The p-value is
  ``(count + 1) / (n_permutations + 1)`` (Phipson & Smyth 2010: the observed assignment is one
  of the permutations), so a sampled test never reports p = 0.
  ranx's version is not reproducible: it calls ``np.random.seed`` in a numba ``parallel=True``
  function, which seeds only the calling thread, while the permutations are drawn in numba's
  worker threads with their own unseeded generators (the same seed gives different p-values
  from one call to the next, even with ``numba.set_num_threads(1)``).
"""

from __future__ import annotations

import math

import numpy as np
from ranx.statistical_tests import paired_student_t_test

#: Test names, in the order results and markers list them.
TESTS = ("student", "fisher")

_CHUNK_CELLS = 1 << 20  # permutations are drawn in blocks of about this many signs


def _paired(control: np.ndarray, treatment: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    control = np.asarray(control, dtype=np.float64)
    treatment = np.asarray(treatment, dtype=np.float64)
    if control.shape != treatment.shape or control.ndim != 1:
        raise ValueError(
            f"paired tests need two 1-D arrays of equal length, got {control.shape} and "
            f"{treatment.shape}"
        )
    return control, treatment


def paired_t_test(control: np.ndarray, treatment: np.ndarray) -> float:
    """Two-sided paired Student t-test p-value, via ranx.

    When every paired difference is zero the t statistic is 0/0 (scipy returns NaN); the runs
    are then identical on this metric and the p-value is 1.0. With fewer than two queries the
    test is undefined and the result is NaN.

    Args:
        control: per-query scores of the baseline.
        treatment: per-query scores of the other run, same queries in the same order.
    """
    control, treatment = _paired(control, treatment)
    if np.array_equal(control, treatment):
        return 1.0
    if control.size < 2:
        return math.nan
    p_value, _ = paired_student_t_test(control, treatment, 1.0)
    return float(p_value)


def fisher_randomization_test(
    control: np.ndarray,
    treatment: np.ndarray,
    n_permutations: int = 10_000,
    seed: int = 42,
) -> float:
    """Two-sided Fisher randomization (permutation) test p-value, reproducible for a seed.

    Swapping a query's two scores flips the sign of its difference, so each permutation is a
    random +/-1 vector ``s`` and its statistic is ``|sum(s * d)|`` with ``d = control -
    treatment`` (comparing sums is comparing means, the query count being fixed). Sums that
    equal the observed one up to rounding (relative 1e-12) count as "at least as large".

    Args:
        control: per-query scores of the baseline.
        treatment: per-query scores of the other run, same queries in the same order.
        n_permutations: number of random permutations (ranx's default is 1,000).
        seed: seed of the NumPy generator (ranx's default is 42).
    """
    control, treatment = _paired(control, treatment)
    if n_permutations < 1:
        raise ValueError(f"n_permutations must be >= 1, got {n_permutations}")
    diff = control - treatment
    if not diff.any():
        return 1.0
    observed = abs(float(diff.sum()))
    tolerance = 1e-12 * max(1.0, float(np.abs(diff).sum()))
    rng = np.random.default_rng(seed)
    block = max(1, _CHUNK_CELLS // diff.size)
    at_least = 0
    remaining = n_permutations
    while remaining > 0:
        size = min(block, remaining)
        signs = rng.integers(0, 2, size=(size, diff.size), dtype=np.int8) * 2 - 1
        sums = np.abs(signs.astype(np.float64) @ diff)
        at_least += int(np.count_nonzero(sums >= observed - tolerance))
        remaining -= size
    return (at_least + 1) / (n_permutations + 1)
