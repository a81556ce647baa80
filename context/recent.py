"""Recent edits: what was just changed in the workspace, kept as hunks, and the `recent` ranker
that offers the ones most likely to matter at the cursor.

Every change the index receives (an open document's new text, a file the watcher saw change) is
diffed against the text the index held for that file, which is the only previous text needed: the
log keeps no copy of any file. A hunk is a range of lines of the file's *current* text, so it is
rendered from that text at request time, and later edits shift, grow or merge it; an edit next to
an earlier hunk of the same file joins it (typing a function line by line is one hunk, not one per
keystroke). The log holds at most `MAX_HUNKS` hunks, each a few integers and a bounded set of the
identifiers of its lines.
"""

from __future__ import annotations

import difflib
import itertools
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from fimls.context.candidates import Candidate, identifiers
from fimls.context.common_ends import common_prefix, common_suffix
from fimls.context.symbol_scan import scan

MAX_HUNKS = 64
MERGE_GAP = 2  # lines between two edits of a file that still make them one hunk
CONTEXT_LINES = 3  # unchanged lines shown before and after a hunk, so that it reads in place
MAX_SNIPPET_LINES = 40
# A changed region longer than this is taken as one hunk without a line diff (difflib is
# quadratic in the worst case; a file rewritten by a tool is one change anyway).
DIFF_LINES = 4000
MAX_NAMES = 128
NAME_LINES = 200  # the lines of a hunk, nearest the edit, whose identifiers it keeps
# The lines of a long hunk (a file created or rewritten) that are cut into pieces and offered:
# those nearest its last edit, so that a large file costs what a small one does.
SHOWN_LINES = 300

_serials = itertools.count()  # one order of arrival across every log (a workspace's folders)


@dataclass(frozen=True)
class Hunk:
    path: str
    start: int  # first line of the edited region in the file's current text, 0-based
    end: int  # exclusive
    time: float  # time.monotonic() of the last edit that touched it
    serial: int  # order of arrival; higher is newer
    names: frozenset = frozenset()  # identifiers of its lines as of its last edit (bounded)
    focus: int = 0  # the first line its last edit changed


def _at_line_start(text: str, position: int) -> bool:
    return position == 0 or position == len(text) or text[position - 1] == "\n"


def changed_lines(old: str, new: str) -> tuple[int, int, list[str], list[str]]:
    """(first line, its offset, old lines, new lines) of the smallest run of whole lines that differs. The
    shared head and tail are found by comparing blocks of characters, so a keystroke in a large
    file costs a memory compare, not a split of both texts into lines."""
    head = common_prefix(old, new)
    line_start = old.rfind("\n", 0, head) + 1
    tail = common_suffix(old, new, min(len(old), len(new)) - line_start)
    old_end, new_end = len(old) - tail, len(new) - tail
    if not (_at_line_start(old, old_end) and _at_line_start(new, new_end)):
        # The shared tail is the same text in both: its next line end is one in both.
        newline = old.find("\n", old_end)
        step = (len(old) if newline < 0 else newline + 1) - old_end
        old_end, new_end = old_end + step, new_end + step
    first = old.count("\n", 0, line_start)
    return first, line_start, old[line_start:old_end].splitlines(keepends=True), new[line_start:new_end].splitlines(keepends=True)


def diff_hunks(old: str, new: str) -> tuple[int, int, list[tuple[str, int, int, int, int]]]:
    """The edit from `old` to `new` as difflib opcodes over whole lines, in file coordinates, with
    the first line of the changed run and its offset (the same in both texts)."""
    first, line_start, before, after = changed_lines(old, new)
    if len(before) + len(after) > DIFF_LINES:
        codes = [("replace", 0, len(before), 0, len(after))]
    else:
        codes = difflib.SequenceMatcher(None, before, after, autojunk=False).get_opcodes()
    shifted = [(tag, i1 + first, i2 + first, j1 + first, j2 + first) for tag, i1, i2, j1, j2 in codes]
    return first, line_start, shifted


def _lines_text(text: str, known_line: int, known_offset: int, start: int, end: int) -> str:
    """Lines `start` to `end` of `text`, found by walking from a line whose offset is known (the
    edit's), so that the cost is the distance, not the file's length."""
    def offset_of(line: int) -> int:
        offset, at = known_offset, known_line
        while at > line:
            offset = text.rfind("\n", 0, offset - 1) + 1
            at -= 1
        while at < line:
            newline = text.find("\n", offset)
            if newline < 0:
                return len(text)
            offset, at = newline + 1, at + 1
        return offset

    first = offset_of(start)
    return text[first : offset_of(end) if end > start else first]


def _names(text: str, known_line: int, known_offset: int, start: int, end: int) -> frozenset:
    """The identifiers of a hunk's lines nearest the edit, at most MAX_NAMES of them."""
    first = max(start, known_line - NAME_LINES // 2)
    found = dict.fromkeys(identifiers(_lines_text(text, known_line, known_offset, first, min(end, first + NAME_LINES))))
    return frozenset(list(found)[:MAX_NAMES])


class EditLog:
    """The hunks of one workspace folder, newest last, bounded in count."""

    def __init__(self, max_hunks: int = MAX_HUNKS, clock: Callable[[], float] = time.monotonic):
        self.max_hunks = max_hunks
        self._clock = clock
        self._hunks: list[Hunk] = []
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._hunks)

    def hunks(self) -> list[Hunk]:
        """Every hunk kept, oldest first."""
        with self._lock:
            return list(self._hunks)

    def clear(self) -> None:
        with self._lock:
            self._hunks.clear()

    def forget(self, path: str) -> None:
        with self._lock:
            self._hunks = [h for h in self._hunks if h.path != path]

    def record(self, path: str, old: str | None, new: str | None) -> None:
        """`old` None: the file is new; `new` None: it is gone."""
        if new is None:
            self.forget(path)
            return
        if old == new:
            return
        if not old:
            if not new:
                return
            first = line_start = 0
            codes = [("insert", 0, 0, 0, new.count("\n") + (not new.endswith("\n")))]
        else:
            first, line_start, codes = diff_hunks(old, new)
        now = self._clock()
        fresh = [(j1, j2) for tag, _i1, _i2, j1, j2 in codes if tag != "equal"]
        with self._lock:
            mine = [h for h in self._hunks if h.path == path]
            others = [h for h in self._hunks if h.path != path]
            # (start, end, the hunk it was, or the line this edit's change starts), merged where they touch.
            spans = [(_new_start(h.start, codes), _new_end(h.end, codes), h) for h in mine] + [(s, e, s) for s, e in fresh]
            spans.sort(key=lambda span: (span[0], span[1]))
            merged: list[list] = []
            for start, end, origin in spans:
                end = max(start, end)
                if merged and start <= merged[-1][1] + MERGE_GAP:
                    merged[-1][1] = max(merged[-1][1], end)
                    merged[-1][2].append(origin)
                else:
                    merged.append([start, end, [origin]])
            kept = []
            for start, end, origins in merged:
                if end <= start:
                    continue  # only lines taken away: nothing left to show
                changes = [origin for origin in origins if isinstance(origin, int)]
                if not changes and len(origins) == 1:
                    moved = min(max(_new_start(origins[0].focus, codes), start), end - 1)
                    kept.append(replace(origins[0], start=start, end=end, focus=moved))
                else:
                    edited = min(max(min(changes, default=start), start), end - 1)
                    kept.append(Hunk(path, start, end, now, next(_serials), _names(new, first, line_start, start, end), edited))
            self._hunks = sorted(others + kept, key=lambda h: h.serial)[-self.max_hunks :]


def _new_start(line: int, codes) -> int:
    """Where old line `line` is in the new text; a line inside a changed run, at the run's start."""
    for tag, i1, i2, j1, _j2 in codes:
        if i1 <= line < i2:
            return j1 + (line - i1) if tag == "equal" else j1
    return _outside(line, codes)


def _new_end(end: int, codes) -> int:
    """The exclusive end in the new text of an old range ending before line `end`; a range whose
    last line was changed ends where the change's new lines end."""
    last = end - 1
    for tag, i1, i2, j1, j2 in codes:
        if i1 <= last < i2:
            return j1 + (last - i1) + 1 if tag == "equal" else j2
    return _outside(last, codes) + 1


def _outside(line: int, codes) -> int:
    """A line before the changed run keeps its number; one after it moves with the run's growth."""
    if not codes or line < codes[0][1]:
        return line
    return line + codes[-1][4] - codes[-1][2]


# -- the ranker ---------------------------------------------------------------------------

PIECE_LINES = 16  # a definition in a hunk is shown by its first lines: its signature and docstring
# What a piece of a hunk scores: a definition whose name the lines at the cursor (or this file's
# own edits) use, a definition whose name other edits use, any definition, and each identifier
# shared with the lines at the cursor.
USED_HERE, USED_IN_EDITS, DEFINES, SHARED = 4.0, 2.0, 1.0, 0.1


@dataclass(frozen=True)
class _Piece:
    start: int
    end: int  # exclusive, context lines included
    defines: frozenset
    names: frozenset  # identifiers of the edited lines in it
    text: str  # what is shown: the lines start to end of the file's current text


class _Profiles:
    """A hunk's pieces, worked out once per (hunk, text of its file)."""

    def __init__(self) -> None:
        self._known: dict[tuple, tuple[str, list[_Piece]]] = {}
        self._lock = threading.Lock()

    def of(self, hunk: Hunk, text: str, lines: list[str]) -> list[_Piece]:
        key = (hunk.path, hunk.start, hunk.end)
        with self._lock:
            known = self._known.get(key)
        if known is not None and known[0] is text:
            return known[1]
        pieces = _pieces(hunk, lines)
        with self._lock:
            self._known[key] = (text, pieces)
            if len(self._known) > 4 * MAX_HUNKS:
                self._known.pop(next(iter(self._known)))
        return pieces


def _pieces(hunk: Hunk, lines: list[str]) -> list[_Piece]:
    """The hunk cut where its definitions start, small neighbours kept together, each piece at
    most a snippet long; context lines around the hunk's two ends."""
    start, end = min(hunk.start, len(lines)), min(hunk.end, len(lines))
    if end - start > SHOWN_LINES:
        start = max(start, min(hunk.focus - SHOWN_LINES // 3, end - SHOWN_LINES))
        end = start + SHOWN_LINES
    if end <= start:
        return []
    found = scan(hunk.path, "".join(lines[start:end]))
    starts = {start + f.line for f in found if f.kind != "attribute" or f.container is None}
    bounds = [start]
    for line in range(start + 1, end):
        if line - bounds[-1] >= MAX_SNIPPET_LINES - 2 * CONTEXT_LINES or (line in starts and line - bounds[-1] >= PIECE_LINES):
            bounds.append(line)
    bounds.append(end)
    pieces = []
    for first, last in zip(bounds, bounds[1:]):
        defines = frozenset(f.name for f in found if first <= start + f.line < last)
        names = frozenset(identifiers("".join(lines[first:last])))
        shown_first = max(0, first - CONTEXT_LINES) if first == start else first
        shown_last = min(len(lines), last + CONTEXT_LINES) if last == end else last
        pieces.append(_Piece(shown_first, shown_last, defines, names, "".join(lines[shown_first:shown_last])))
    return pieces


_profiles = _Profiles()


class _Lines:
    """A file's lines, split once per text (the same text serves every request until it changes)."""

    def __init__(self) -> None:
        self._texts: dict[str, tuple[str, list[str]]] = {}
        self._lock = threading.Lock()

    def of(self, path: str, text: str) -> list[str]:
        with self._lock:
            known = self._texts.get(path)
        if known is None or known[0] is not text:
            known = (text, text.splitlines(keepends=True))
            with self._lock:
                self._texts[path] = known
                if len(self._texts) > MAX_HUNKS:
                    self._texts.pop(next(iter(self._texts)))
        return known[1]


_lines = _Lines()


def recent_search(
    hunks: list[Hunk], current: str, query: str, text_of: Callable[[str], str | None], limit: int,
) -> list[Candidate]:
    """Pieces of the edited regions of other files than `current`, best first."""
    here = set(identifiers(query))
    texts: dict[str, str] = {}
    profiles: list[tuple[Hunk, list[_Piece]]] = []
    for hunk in hunks:
        if hunk.path == current:
            # This file's own edits are never shown (they are in the window, and change at every
            # keystroke), but the names they use say which other edits matter here.
            here |= hunk.names
            continue
        text = texts.get(hunk.path) or text_of(hunk.path)
        if text is None:
            continue
        texts[hunk.path] = text
        profiles.append((hunk, _profiles.of(hunk, text, _lines.of(hunk.path, text))))
    used_in: dict[str, set[str]] = {}  # name -> files whose edits use it
    for hunk, pieces in profiles:
        for piece in pieces:
            for name in piece.names:
                used_in.setdefault(name, set()).add(hunk.path)
    found: list[tuple[tuple, Candidate]] = []
    for hunk, pieces in profiles:
        for piece in pieces:
            score = DEFINES * bool(piece.defines) + SHARED * len(here & piece.names)
            if piece.defines & here:
                score += USED_HERE
            if any(used_in.get(name, {hunk.path}) - {hunk.path} for name in piece.defines):
                score += USED_IN_EDITS
            candidate = Candidate(hunk.path, piece.start, piece.end, piece.text, "recent", score)
            found.append(((score, hunk.serial, -piece.start), candidate))
    found.sort(key=lambda item: item[0], reverse=True)
    return [candidate for _, candidate in found[:limit]]
