"""Permutation parsing and repair, and the sliding-window arithmetic of listwise ranking."""

from __future__ import annotations

import random

import pytest

from retrieval_kd.errors import RKDError
from teachers.permutation import (
    apply_window,
    format_permutation,
    identifier_labels,
    parse_permutation,
    sliding_rank,
    sliding_windows,
)


def test_clean_output_needs_no_repair():
    p = parse_permutation("[3] > [1] > [2]", 3)
    assert p.order == [2, 0, 1]
    assert (p.invalid, p.duplicate, p.missing, p.repaired, p.unparsed) == (0, 0, 0, False, False)


@pytest.mark.parametrize(
    ("text", "order", "invalid", "duplicate", "missing"),
    [
        ("[2] > [2] > [1] > [3] > [4]", [1, 0, 2, 3], 0, 1, 0),  # repeated
        ("[4] > [2]", [3, 1, 0, 2], 0, 0, 2),  # missing, appended in original order
        ("[9] > [0] > [2] > [x] > [1]", [1, 0, 2, 3], 3, 0, 2),  # invalid ids dropped
        ("[ 2 ]>[4]>[2]>[17]", [1, 3, 0, 2], 1, 1, 2),  # spacing, all faults at once
        ("2 > 1 > 4 > 3", [1, 0, 3, 2], 0, 0, 0),  # bare numbers when nothing is bracketed
        ("[2] > [1] and since 1999 the 3rd", [1, 0, 2, 3], 0, 0, 2),  # brackets win over prose
    ],
)
def test_repairs_are_counted(text, order, invalid, duplicate, missing):
    p = parse_permutation(text, 4)
    assert p.order == order
    assert (p.invalid, p.duplicate, p.missing) == (invalid, duplicate, missing)
    assert p.repaired == bool(invalid or duplicate or missing)


@pytest.mark.parametrize("text", ["", None, "I cannot rank these passages.", "]]][[[ > >", "\x00"])
def test_empty_or_garbage_output_keeps_the_original_order(text):
    p = parse_permutation(text, 5)
    assert p.order == [0, 1, 2, 3, 4]
    assert p.missing == 5 and p.unparsed


def test_letter_identifiers_parse_case_insensitively():
    labels = identifier_labels(4, "letter")
    assert labels == ["A", "B", "C", "D"]
    assert parse_permutation("[c] > [A] > [Z]", 4, labels).order == [2, 0, 1, 3]
    assert parse_permutation("C > A", 4, labels).order == [2, 0, 1, 3]
    assert format_permutation([2, 0, 1, 3], labels) == "[C] > [A] > [B] > [D]"
    with pytest.raises(RKDError):
        identifier_labels(27, "letter")


def test_any_random_output_parses_to_a_permutation():
    rng = random.Random(0)
    pieces = ["[", "]", ">", " ", "1", "2", "7", "12", "a", "[3]", "[0]", "\n", "[-1]"]
    for _ in range(300):
        n = rng.randint(0, 12)
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 30)))
        p = parse_permutation(text, n)
        assert sorted(p.order) == list(range(n))


@pytest.mark.parametrize("n", range(0, 31))
@pytest.mark.parametrize(("window", "stride"), [(1, 1), (2, 1), (4, 2), (5, 5), (7, 3), (20, 10)])
def test_windows_cover_every_position_back_to_front(n, window, stride):
    windows = sliding_windows(n, window, stride)
    covered = sorted({i for start, end in windows for i in range(start, end)})
    assert covered == list(range(n))
    if n:
        assert windows[0][1] == n and windows[-1][0] == 0
        assert all(end - start == min(window, n) for start, end in windows)
        starts = [start for start, _ in windows]
        assert starts == sorted(starts, reverse=True)
        # consecutive windows overlap by at least window - stride positions
        for (s1, _), (_, e2) in zip(windows, windows[1:], strict=False):
            assert e2 - s1 >= window - stride
    else:
        assert windows == []


def test_bad_window_settings_are_refused():
    for window, stride in [(0, 1), (3, 0), (3, 4)]:
        with pytest.raises(RKDError):
            sliding_windows(10, window, stride)


@pytest.mark.parametrize("n", [1, 2, 5, 9, 10, 11, 23, 40])
@pytest.mark.parametrize(("window", "stride"), [(4, 2), (5, 1), (6, 3), (20, 10), (3, 3)])
def test_top_window_minus_stride_is_exact_with_an_oracle(n, window, stride):
    rng = random.Random(n * 100 + window)
    relevance = [rng.random() for _ in range(n)]
    visited: set[int] = set()

    def oracle(items: list[int]) -> list[int]:
        visited.update(items)
        return sorted(range(len(items)), key=lambda i: -relevance[items[i]])

    order = sliding_rank(n, window, stride, oracle)
    truth = sorted(range(n), key=lambda i: -relevance[i])
    exact = n if n <= window else window - stride
    assert visited == set(range(n))
    assert sorted(order) == list(range(n))
    assert order[:exact] == truth[:exact]


def test_more_passes_sort_fully():
    relevance = list(range(12))
    random.Random(3).shuffle(relevance)

    def oracle(items: list[int]) -> list[int]:
        return sorted(range(len(items)), key=lambda i: -relevance[items[i]])

    order = sliding_rank(12, 4, 2, oracle, passes=6)
    assert order == sorted(range(12), key=lambda i: -relevance[i])


def test_apply_window_checks_the_permutation():
    assert apply_window([5, 6, 7, 8], 1, 3, [1, 0]) == [5, 7, 6, 8]
    with pytest.raises(RKDError):
        apply_window([5, 6, 7, 8], 1, 3, [0, 0])
