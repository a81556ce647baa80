"""Copilot's neighbouring-tabs ranker: 60-line windows of open and recently edited files, scored
by the Jaccard similarity of their identifiers with the lines before the cursor."""

from __future__ import annotations

from fimls.context.candidates import Candidate, identifiers

WINDOW_LINES = 60
STEP_LINES = 10


def jaccard_search(query: str, files: dict[str, str], limit: int, exclude=lambda path, start, end: False) -> list[Candidate]:
    wanted = set(identifiers(query))
    if not wanted:
        return []
    scored = []
    for path, text in files.items():
        lines = text.splitlines(keepends=True)
        for start in range(0, max(1, len(lines) - WINDOW_LINES + STEP_LINES), STEP_LINES):
            end = min(len(lines), start + WINDOW_LINES)
            if exclude(path, start, end):
                continue
            window = set(identifiers("".join(lines[start:end])))
            union = len(wanted | window)
            score = len(wanted & window) / union if union else 0.0
            if score > 0:
                scored.append(Candidate(path, start, end, "".join(lines[start:end]), "jaccard", score))
    scored.sort(key=lambda c: -c.score)
    best: list[Candidate] = []
    for candidate in scored:  # overlapping windows of one file: keep the best
        if not any(candidate.overlaps(b.path, b.start_line, b.end_line) for b in best):
            best.append(candidate)
        if len(best) == limit:
            break
    return best
