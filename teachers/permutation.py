"""Permutations from listwise LLM output: identifiers, robust parsing with repair, sliding windows.

A listwise reranker (RankGPT: Sun et al. 2023, "Is ChatGPT Good at Search? Investigating Large
Language Models as Re-Ranking Agents", EMNLP) shows a window of passages tagged ``[1]..[w]`` and
answers with an order such as ``"[3] > [1] > [2]"``. Models answer imperfectly: an identifier
may repeat, be missing, or name no passage, and a weak model may answer with prose. Parsing
never fails: invalid and repeated identifiers are dropped, missing ones are appended in their
original order, and each repair is counted (:class:`ParsedPermutation`).

Long lists are ranked with a window of ``w`` passages that slides from the back of the list to
the front by a stride ``s`` (RankGPT's sliding window). :func:`sliding_windows` lists the windows
so that every position is covered, including the front when ``(n - w)`` is not a multiple of
``s`` (RankGPT's own loop then skips the first positions). Each window keeps its best ``w - s``
passages in the part it shares with the next window, so after one back-to-front pass the top
``w - s`` of the whole list are exact for an exact window ranker (all ``w`` when one window
covers the list).
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from retrieval_kd.errors import RKDError

IDENTIFIER_STYLES = ("number", "letter")
_BRACKETED = re.compile(r"\[\s*([A-Za-z0-9]+)\s*\]")
_BARE_NUMBER = re.compile(r"(?<![\w.])(\d+)(?![\w.])")
_BARE_LETTER = re.compile(r"(?<![\w.])([A-Z])(?![\w])")


def identifier_labels(n: int, style: str = "number") -> list[str]:
    """The labels of ``n`` passages: ``"1".."n"`` (number) or ``"A".."Z"`` (letter, n <= 26).

    Raises:
        RKDError: unknown style, or more than 26 letter labels.
    """
    if style == "number":
        return [str(i + 1) for i in range(n)]
    if style == "letter":
        if n > 26:
            raise RKDError(f"letter identifiers cover at most 26 passages, got {n}")
        return list(string.ascii_uppercase[:n])
    raise RKDError(f"identifier style must be one of {IDENTIFIER_STYLES}, got {style!r}")


@dataclass(frozen=True)
class ParsedPermutation:
    """A complete permutation read from model output, and what had to be repaired.

    Attributes:
        order: 0-based passage indices, best first; always a permutation of ``range(n)``.
        invalid: identifiers that name no passage (dropped).
        duplicate: repeated identifiers (later occurrences dropped).
        missing: passages the output did not name (appended in their original order).
    """

    order: list[int]
    invalid: int = 0
    duplicate: int = 0
    missing: int = 0

    @property
    def unparsed(self) -> bool:
        """True when the output named no passage at all (the order is the original one)."""
        return bool(self.order) and self.missing == len(self.order)

    @property
    def repaired(self) -> bool:
        """True when anything was dropped or appended."""
        return bool(self.invalid or self.duplicate or self.missing)


def parse_permutation(
    text: str | None, n: int, labels: Sequence[str] | None = None
) -> ParsedPermutation:
    """Read an order of ``n`` passages from text such as ``"[3] > [1] > [2]"``; never fails.

    Bracketed identifiers (``[3]``, ``[ C ]``) are read when the text has any; otherwise bare
    numbers (or, for letter labels, bare capital letters) are. Letters match case-insensitively.

    Args:
        text: the model's output (None or empty: nothing named).
        n: number of passages.
        labels: the passage identifiers in passage order; default ``"1".."n"``.

    Returns:
        The repaired permutation and the repair counts.

    Example:
        >>> p = parse_permutation("[2] > [2] > [7] > [1]", 3)
        >>> p.order, p.duplicate, p.invalid, p.missing
        ([1, 0, 2], 1, 1, 1)
    """
    labels = identifier_labels(n) if labels is None else list(labels)
    if len(labels) != n:
        raise RKDError(f"{len(labels)} labels for {n} passages")
    index = {label.upper(): i for i, label in enumerate(labels)}
    text = text or ""
    found = _BRACKETED.findall(text)
    if not found:
        letters = all(label.isalpha() for label in labels) and bool(labels)
        found = (_BARE_LETTER if letters else _BARE_NUMBER).findall(text)
    order: list[int] = []
    seen: set[int] = set()
    invalid = duplicate = 0
    for token in found:
        i = index.get(token.upper())
        if i is None:
            invalid += 1
        elif i in seen:
            duplicate += 1
        else:
            seen.add(i)
            order.append(i)
    missing = [i for i in range(n) if i not in seen]
    return ParsedPermutation(order + missing, invalid, duplicate, len(missing))


def format_permutation(order: Sequence[int], labels: Sequence[str] | None = None) -> str:
    """The answer format for an order: ``[3] > [1] > [2]`` (0-based indices in, labels out)."""
    labels = identifier_labels(len(order)) if labels is None else list(labels)
    return " > ".join(f"[{labels[i]}]" for i in order)


def sliding_windows(n: int, window: int, stride: int) -> list[tuple[int, int]]:
    """Windows ``[start, end)`` of a back-to-front pass over ``n`` positions.

    The first window is the last ``window`` positions; each next one moves ``stride`` towards
    the front; the last one is ``[0, window)`` (a larger overlap with the one before when
    ``n - window`` is not a multiple of ``stride``). One window when ``n <= window``; none when
    ``n == 0``.

    Raises:
        RKDError: ``window < 1`` or a stride outside ``1..window``.

    Example:
        >>> sliding_windows(10, 4, 2)
        [(6, 10), (4, 8), (2, 6), (0, 4)]
        >>> sliding_windows(7, 4, 2)
        [(3, 7), (1, 5), (0, 4)]
    """
    if window < 1 or not 1 <= stride <= window:
        raise RKDError(f"need window >= 1 and 1 <= stride <= window, got {window}, {stride}")
    windows: list[tuple[int, int]] = []
    end = n
    while end > 0:
        start = max(0, end - window)
        if start == 0:  # the front window is a full one
            windows.append((0, min(n, window)))
            break
        windows.append((start, end))
        end -= stride
    return windows


def apply_window(order: list[int], start: int, end: int, local: Sequence[int]) -> list[int]:
    """Reorder ``order[start:end]`` by ``local`` (a permutation of ``range(end - start)``).

    Raises:
        RKDError: ``local`` is not a permutation of the window's positions.
    """
    if sorted(local) != list(range(end - start)):
        raise RKDError(f"window permutation {list(local)} is not a permutation of 0..{end - start}")
    segment = order[start:end]
    return order[:start] + [segment[i] for i in local] + order[end:]


def sliding_rank(
    n: int,
    window: int,
    stride: int,
    rank_window: Callable[[list[int]], Sequence[int]],
    passes: int = 1,
) -> list[int]:
    """Rank ``n`` items by back-to-front passes of a window ranker.

    Args:
        n: number of items, initially in the order ``0..n-1`` (the first-stage order).
        window: window size ``w``.
        stride: step ``s`` between windows (``1 <= s <= w``).
        rank_window: given the item indices in a window (current order), returns a permutation
            of the window's positions, best first.
        passes: full back-to-front passes.

    Returns:
        Item indices, best first.

    Example:
        >>> best_is_largest = lambda items: sorted(range(len(items)), key=lambda i: -items[i])
        >>> sliding_rank(6, 3, 2, best_is_largest)[:1]  # top w - s = 1 exact
        [5]
    """
    order = list(range(n))
    for _ in range(passes):
        for start, end in sliding_windows(n, window, stride):
            order = apply_window(order, start, end, rank_window(order[start:end]))
    return order
