"""Cut the text around the cursor into a prefix and a suffix that fit token budgets.

Budgets are counted with the model's own tokenizer (the caller's `count_tokens`), and the cut
falls on a line boundary whenever a whole line fits: a half line at the top of the prompt looks
like nothing the model was trained on.
"""

from __future__ import annotations

from fimls.context.languages import path_comment
from fimls.contract import PromptParts, TokenCounter


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


# Lines are found near the cursor in chunks of this many characters, so that cutting a window
# costs what the window holds, not what the file holds.
CHUNK_CHARS = 16384


def lines_back(text: str, end: int):
    """The lines of `text[:end]` (keeping their breaks), from the last one up, as
    `str.splitlines` splits them; `end` must follow a line break. Read from `end` back in chunks."""
    chunk = CHUNK_CHARS
    while end > 0:
        start = max(0, end - chunk)
        pieces = text[start:end].splitlines(keepends=True)
        if start > 0:
            if len(pieces) < 2:  # one line longer than the chunk: read further back
                chunk *= 2
                continue
            pieces = pieces[1:]  # the first may have been cut by the chunk's start
        for line in reversed(pieces):
            yield line
        end -= sum(map(len, pieces))


def lines_forward(text: str, start: int):
    """The lines of `text[start:]` (keeping their breaks), from the first one down, as
    `str.splitlines` splits them; `start` must begin a line. Read from `start` on in chunks."""
    chunk = CHUNK_CHARS
    while start < len(text):
        end = min(len(text), start + chunk)
        pieces = text[start:end].splitlines(keepends=True)
        if end < len(text):
            if len(pieces) < 2:  # one line longer than the chunk: read further on
                chunk *= 2
                continue
            pieces = pieces[:-1]  # the last may have been cut by the chunk's end
        yield from pieces
        start += sum(map(len, pieces))


class _Lines:
    """Lines from an iterator, read only as far as they are asked for."""

    def __init__(self, lines):
        self._more = iter(lines)
        self.read: list[str] = []

    def has(self, count: int) -> bool:
        while len(self.read) < count:
            line = next(self._more, None)
            if line is None:
                return False
            self.read.append(line)
        return True


def _lines_that_fit(lines: _Lines, budget: int, count_tokens: TokenCounter) -> int:
    """How many of `lines` (nearest to the cursor first) fit in `budget`, line by line."""
    taken, total = 0, 0
    while lines.has(taken + 1):
        total += count_tokens(lines.read[taken])
        if total > budget:
            break
        taken += 1
    return taken


def _cut(current: str, others, budget: int, count_tokens: TokenCounter, before: bool) -> str:
    """`current` (the cursor's line part) plus as many whole `others` lines as fit.

    Per-line counts can differ from the joined count where a merge spans a line break, so the
    joined text is counted exactly at the end and shortened, or grown, to the most that fits.
    (With a tokenizer whose tokens never span a line break the two agree, and with remembered
    line counts the final checks cost no tokenizing.)
    """
    if budget <= 0:
        return ""
    if count_tokens(current) > budget:
        return _fit_chars(current, budget, count_tokens, keep_end=before)
    lines = _Lines(others)

    def join(n: int) -> str:
        return "".join(reversed(lines.read[:n])) + current if before else current + "".join(lines.read[:n])

    taken = _lines_that_fit(lines, budget - count_tokens(current), count_tokens)
    while taken and count_tokens(join(taken)) > budget:
        taken -= 1
    while lines.has(taken + 1) and count_tokens(join(taken + 1)) <= budget:
        taken += 1
    return join(taken)


def cut_prefix(text: str, offset: int, budget: int, count_tokens: TokenCounter) -> str:
    """The end of `text[:offset]` within `budget`: the cursor's line so far and whole lines above."""
    line_start = text.rfind("\n", 0, offset) + 1
    return _cut(text[line_start:offset], lines_back(text, line_start), budget, count_tokens, before=True)


def cut_suffix(text: str, offset: int, budget: int, count_tokens: TokenCounter) -> str:
    """The start of `text[offset:]` within `budget`: the rest of the cursor's line and whole lines below."""
    line_end = text.find("\n", offset) + 1 or len(text)
    return _cut(text[offset:line_end], lines_forward(text, line_end), budget, count_tokens, before=False)


def window_lines(cursor_line: int, parts: PromptParts) -> tuple[int, int]:
    """The lines (0-based, end exclusive) that `parts`' prefix and suffix already show, for a
    cursor on `cursor_line` (its count of "\n" before it)."""
    return cursor_line - parts.prefix.count("\n"), cursor_line + parts.suffix.count("\n") + 1


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
        prefix=cut_prefix(text, offset, prefix_tokens, count_tokens),
        suffix=cut_suffix(text, offset, suffix_tokens, count_tokens),
    )
