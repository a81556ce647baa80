"""Copilot's neighbouring-tabs ranker: 60-line windows of open and recently edited files, scored
by the Jaccard similarity of their identifiers with the lines before the cursor.

A window is six 10-line blocks. Identifier sets are kept per block, keyed by the block's text, so
a keystroke re-reads one block of the file being typed in, not every window of it; a window's
intersection with the query is the union of its blocks' (small) intersections, and its size is
remembered per run of block texts."""

from __future__ import annotations

import threading
from collections import OrderedDict

from fimls.context.candidates import Candidate, identifiers

WINDOW_LINES = 60
STEP_LINES = 10
BLOCKS_PER_WINDOW = WINDOW_LINES // STEP_LINES
BLOCKS_CACHED = 16384  # about 160,000 lines of open and recent files
FILES_CACHED = 64
# The file being typed in changes at every keystroke, and its windows are read again whenever the
# cursor changes line: only this many lines around the cursor are, so that costs the same in a
# 3 MB file as in a 2,000-line one (BM25 still reaches the rest of it).
CURRENT_FILE_LINES = 2000


class _File:
    """A text's blocks, their identifier sets and the sizes of its windows' identifier sets."""

    def __init__(self, text: str, lines: list[str]):
        self.text = text
        self.line_count = len(lines)
        self.blocks = ["".join(lines[i : i + STEP_LINES]) for i in range(0, len(lines), STEP_LINES)] or [""]
        self.sets = [_block_identifiers(block) for block in self.blocks]
        self.sizes = [_window_size(self, i) for i in range(max(1, len(self.blocks) - BLOCKS_PER_WINDOW + 1))]

    def window_text(self, start_line: int) -> str:
        first = start_line // STEP_LINES
        return "".join(self.blocks[first : first + BLOCKS_PER_WINDOW])


_blocks: OrderedDict[str, frozenset] = OrderedDict()
_sizes: OrderedDict[tuple[str, ...], int] = OrderedDict()
_files: dict[str, _File] = {}
_lock = threading.Lock()


def _remember(cache: OrderedDict, key, value, limit: int):
    cache[key] = value
    if len(cache) > limit:
        cache.popitem(last=False)
    return value


def _block_identifiers(block: str) -> frozenset:
    found = _blocks.get(block)
    if found is None:
        return _remember(_blocks, block, frozenset(identifiers(block)), BLOCKS_CACHED)
    _blocks.move_to_end(block)
    return found


def _window_size(file: _File, first: int) -> int:
    key = tuple(file.blocks[first : first + BLOCKS_PER_WINDOW])
    size = _sizes.get(key)
    if size is None:
        size = _remember(_sizes, key, len(frozenset().union(*file.sets[first : first + BLOCKS_PER_WINDOW])), BLOCKS_CACHED)
    return size


def _file(path: str, text: str) -> _File:
    found = _files.get(path)
    if found is None or found.text is not text:
        if len(_files) >= FILES_CACHED:
            _files.pop(next(iter(_files)))
        found = _files[path] = _File(text, text.splitlines(keepends=True))
    return found


def warm(path: str, text: str) -> None:
    with _lock:
        _file(path, text)


def around_cursor(text: str, offset: int, line: int) -> tuple[str, int]:
    """The lines of `text` within CURRENT_FILE_LINES / 2 of the cursor's `line`, from a block
    boundary: (that text, the line it starts at)."""
    first = max(0, line - CURRENT_FILE_LINES // 2) // STEP_LINES * STEP_LINES
    start = offset
    for _ in range(line - first + 1):
        start = text.rfind("\n", 0, start)
        if start < 0:
            break
    end = offset
    for _ in range(CURRENT_FILE_LINES // 2):
        end = text.find("\n", end) + 1
        if end == 0:
            end = len(text)
            break
    return text[start + 1 : end], first


def jaccard_search(
    query: str, files: dict[str, str], limit: int, exclude=lambda path, start, end: False, first_lines: dict[str, int] | None = None,
) -> list[Candidate]:
    """Windows of `files` (path -> text) most like `query`; `first_lines` gives the line a text
    starts at when it is a part of its file."""
    first_lines = first_lines or {}
    wanted = frozenset(identifiers(query))
    if not wanted:
        return []
    with _lock:  # the caches are shared by concurrent requests
        opened = {path: _file(path, text) for path, text in files.items()}
    scored = []  # (score, path, first block), Candidates made only for the kept ones
    for path, file in opened.items():
        shared = [wanted & block for block in file.sets]
        for first, size in enumerate(file.sizes):
            parts = shared[first : first + BLOCKS_PER_WINDOW]
            if any(parts):
                inter = len(frozenset().union(*parts))
                scored.append((inter / (len(wanted) + size - inter), path, first))
    scored.sort(key=lambda item: -item[0])
    best: list[Candidate] = []
    for score, path, first in scored:
        start = first * STEP_LINES
        end = min(opened[path].line_count, start + WINDOW_LINES)
        text = opened[path].window_text(start)
        shift = first_lines.get(path, 0)
        start, end = start + shift, end + shift
        # Overlapping windows of one file: keep the best.
        if exclude(path, start, end) or any(b.overlaps(path, start, end) for b in best):
            continue
        best.append(Candidate(path, start, end, text, "jaccard", score))
        if len(best) == limit:
            break
    return best
