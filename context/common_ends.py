"""What two texts (str or bytes) share at their start and at their end: where an edit begins and
ends, for the edit log and for tree-sitter's incremental re-parse. Slice comparisons run in C; a
fixed block is compared first so that an edit near the start of a large file costs little, then
the last block is bisected."""

from __future__ import annotations

from typing import TypeVar

Text = TypeVar("Text", str, bytes)

COMPARE_BLOCK = 8192  # characters (or bytes) compared at a time


def common_prefix(a: Text, b: Text) -> int:
    """The length of the longest common start of `a` and `b`."""
    limit = min(len(a), len(b))
    i = 0
    while i + COMPARE_BLOCK <= limit and a[i : i + COMPARE_BLOCK] == b[i : i + COMPARE_BLOCK]:
        i += COMPARE_BLOCK
    low, high = i, min(i + COMPARE_BLOCK, limit)  # a[i:low] == b[i:low]; find the largest such
    while low < high:
        middle = (low + high + 1) // 2
        if a[i:middle] == b[i:middle]:
            low = middle
        else:
            high = middle - 1
    return low


def common_suffix(a: Text, b: Text, limit: int) -> int:
    """The length of the longest common end of `a` and `b`, at most `limit`."""
    la, lb = len(a), len(b)
    n = 0
    while n + COMPARE_BLOCK <= limit and a[la - n - COMPARE_BLOCK : la - n] == b[lb - n - COMPARE_BLOCK : lb - n]:
        n += COMPARE_BLOCK
    low, high = n, min(n + COMPARE_BLOCK, limit)
    while low < high:
        middle = (low + high + 1) // 2
        if a[la - middle : la - n] == b[lb - middle : lb - n]:
            low = middle
        else:
            high = middle - 1
    return low
