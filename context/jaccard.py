"""Copilot's neighbouring-tabs ranker: 60-line windows of open and recently edited files, scored
by the Jaccard similarity of their identifiers with the lines before the cursor."""

from __future__ import annotations

from fimls.context.candidates import Candidate, identifiers

WINDOW_LINES = 60
STEP_LINES = 10


_windows_cache: dict[str, tuple[str, list[tuple[int, int, frozenset]]]] = {}
WINDOWS_CACHED = 64


def _windows(path: str, text: str) -> list[tuple[int, int, frozenset]]:
    """A file's windows and their identifier sets, computed again only for a new text."""
    hit = _windows_cache.get(path)
    if hit is not None and hit[0] is text:
        return hit[1]
    lines = text.splitlines(keepends=True)
    windows = []
    for start in range(0, max(1, len(lines) - WINDOW_LINES + STEP_LINES), STEP_LINES):
        end = min(len(lines), start + WINDOW_LINES)
        windows.append((start, end, frozenset(identifiers("".join(lines[start:end])))))
    if len(_windows_cache) >= WINDOWS_CACHED:
        _windows_cache.pop(next(iter(_windows_cache)))
    _windows_cache[path] = (text, windows)
    return windows


def jaccard_search(query: str, files: dict[str, str], limit: int, exclude=lambda path, start, end: False) -> list[Candidate]:
    wanted = frozenset(identifiers(query))
    if not wanted:
        return []
    scored = []
    for path, text in files.items():
        for start, end, window in _windows(path, text):
            if exclude(path, start, end):
                continue
            union = len(wanted | window)
            score = len(wanted & window) / union if union else 0.0
            if score > 0:
                scored.append(Candidate(path, start, end, "", "jaccard", score))
    scored.sort(key=lambda c: -c.score)
    best: list[Candidate] = []
    for candidate in scored:  # overlapping windows of one file: keep the best
        if not any(candidate.overlaps(b.path, b.start_line, b.end_line) for b in best):
            best.append(candidate)
        if len(best) == limit:
            break
    # Only the kept windows' text is cut out.
    return [
        Candidate(c.path, c.start_line, c.end_line, "".join(files[c.path].splitlines(keepends=True)[c.start_line : c.end_line]), c.ranker, c.score)
        for c in best
    ]
