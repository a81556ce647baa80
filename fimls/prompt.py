"""The parts of a fill-in-the-middle prompt, before any model template is applied: the contract
between `context`, which decides them, and the backends that turn them into completions (the
in-process engine, a shared inference server). Both import this module; neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

TokenCounter = Callable[[str], int]


@dataclass(frozen=True)
class Snippet:
    """Text from another file, already headed by its path comment; the lines it came from (0-based,
    end exclusive) let an evaluation tell what was retrieved."""

    path: str
    text: str
    start_line: int = 0
    end_line: int = 0


@dataclass(frozen=True)
class PromptParts:
    """Ordered from what changes least to what changes on every keystroke, so that a renderer
    that concatenates them in this order keeps the longest reusable token prefix."""

    header: str
    prefix: str
    suffix: str
    snippets: tuple[Snippet, ...] = field(default_factory=tuple)
