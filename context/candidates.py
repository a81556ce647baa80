"""A piece of another file (or a far part of this one) that could help the model, and the
identifiers both the rankers and their queries are made of."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Too common in code to tell one chunk from another.
STOP = frozenset(
    "self this def class return if else elif for while in is not and or import from as with try "
    "except finally raise pass break continue none None True False true false null let const var "
    "function func fn pub use mod struct impl package public private static void int str new the "
    "a to of".split()
)


def lines_before(text: str, offset: int, count: int) -> str:
    """The last `count` lines before `offset` (the cursor's own line so far included), found from
    the end: splitting the whole prefix of a large file would cost more than the search."""
    start = offset
    for _ in range(count):
        start = text.rfind("\n", 0, start)
        if start < 0:
            return text[:offset]
    return text[start + 1 : offset]


# Identifiers of two characters or more: single letters say nothing, and a pattern that never
# matches them saves testing every match's length (a tenth of indexing a large workspace).
IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]+")


def identifiers(text: str) -> list[str]:
    return [t for t in IDENTIFIER.findall(text) if t not in STOP]


@dataclass(frozen=True)
class Candidate:
    path: str
    start_line: int  # 0-based, inclusive
    end_line: int  # exclusive
    text: str
    ranker: str
    score: float

    def overlaps(self, path: str, start_line: int, end_line: int) -> bool:
        return self.path == path and self.start_line < end_line and start_line < self.end_line
