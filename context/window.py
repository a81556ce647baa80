"""Cut the text around the cursor into a prefix and a suffix that fit token budgets.

Budgets are counted with the model's own tokenizer (the caller's `count_tokens`), and the cut
falls on a line boundary whenever a whole line fits: a half line at the top of the prompt looks
like nothing the model was trained on.
"""

from __future__ import annotations

from fimls.context.languages import path_comment
from fimls.context.prompt import PromptParts, TokenCounter


def _fit_chars(text: str, budget: int, count_tokens: TokenCounter, keep_end: bool) -> str:
    """The longest end (or start) of `text` within `budget` tokens, by binary search on length."""
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        piece = text[len(text) - mid :] if keep_end else text[:mid]
        if count_tokens(piece) <= budget:
            lo = mid
        else:
            hi = mid - 1
    return text[len(text) - lo :] if keep_end else text[:lo]


def _lines_that_fit(lines: list[str], budget: int, count_tokens: TokenCounter) -> int:
    """How many of `lines` (nearest to the cursor first) fit in `budget`, line by line."""
    taken, total = 0, 0
    for line in lines:
        total += count_tokens(line)
        if total > budget:
            break
        taken += 1
    return taken


def _cut(current: str, others: list[str], budget: int, count_tokens: TokenCounter, before: bool) -> str:
    """`current` (the cursor's line part) plus as many whole `others` lines as fit.

    Per-line counts can differ from the joined count where a merge spans a line break, so the
    joined text is counted exactly at the end and shortened, or grown, to the most that fits.
    """
    if budget <= 0:
        return ""
    if count_tokens(current) > budget:
        return _fit_chars(current, budget, count_tokens, keep_end=before)
    join = (lambda n: "".join(reversed(others[:n])) + current) if before else (lambda n: current + "".join(others[:n]))
    taken = _lines_that_fit(others, budget - count_tokens(current), count_tokens)
    while taken and count_tokens(join(taken)) > budget:
        taken -= 1
    while taken < len(others) and count_tokens(join(taken + 1)) <= budget:
        taken += 1
    return join(taken)


def cut_prefix(before: str, budget: int, count_tokens: TokenCounter) -> str:
    line_start = before.rfind("\n") + 1
    earlier = before[:line_start].splitlines(keepends=True)
    earlier.reverse()
    return _cut(before[line_start:], earlier, budget, count_tokens, before=True)


def cut_suffix(after: str, budget: int, count_tokens: TokenCounter) -> str:
    line_end = after.find("\n") + 1 or len(after)
    return _cut(after[:line_end], after[line_end:].splitlines(keepends=True), budget, count_tokens, before=False)


def window_lines(text: str, offset: int, parts: PromptParts) -> tuple[int, int]:
    """The lines (0-based, end exclusive) of `text` that `parts`' prefix and suffix already show."""
    return text.count("\n", 0, offset - len(parts.prefix)), text.count("\n", 0, offset + len(parts.suffix)) + 1


def window_parts(
    text: str,
    offset: int,
    path: str,
    count_tokens: TokenCounter,
    *,
    prefix_tokens: int,
    suffix_tokens: int,
) -> PromptParts:
    """Prompt parts for a cursor at code-point `offset` of `text` in the file at `path`."""
    offset = max(0, min(offset, len(text)))
    return PromptParts(
        header=path_comment(path),
        prefix=cut_prefix(text[:offset], prefix_tokens, count_tokens),
        suffix=cut_suffix(text[offset:], suffix_tokens, count_tokens),
    )
