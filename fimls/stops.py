"""When a completion is finished, decided from its text after every token (never generate and cut).

- single-line: the completion ends at the end of the cursor's line;
- multi-line: it ends when a line dedents out of the block being written, or at a blank-line pair;
- stop strings, whatever the mode.
EOS and the token limit are the decode loop's own rules.
"""

from __future__ import annotations

from dataclasses import dataclass


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" \t"))


@dataclass(frozen=True)
class StopRules:
    single_line: bool = False
    # Indentation of the cursor's line when the cursor sits in its leading white space (the
    # completion's first line then belongs to the block); None when the cursor follows code.
    cursor_block_indent: int | None = None
    stop_strings: tuple[str, ...] = ()

    def cut(self, text: str) -> int | None:
        """Where to cut `text` if a rule has fired, else None."""
        cuts = [i for i in (text.find(s) for s in self.stop_strings if s) if i >= 0]
        if self.single_line:
            if (newline := text.find("\n")) >= 0:
                cuts.append(newline)
        else:
            if (blank_pair := text.find("\n\n\n")) >= 0:
                cuts.append(blank_pair)
            if (dedent := self._dedent(text)) is not None:
                cuts.append(dedent)
        return min(cuts) if cuts else None

    def _dedent(self, text: str) -> int | None:
        """Offset of the newline before the first line indented less than the block being written.

        The block's indentation is the cursor's (when the cursor is in leading white space) or that
        of the completion's first new line with code; a line only counts once it has code, since
        its indentation is not known before.
        """
        block = self.cursor_block_indent
        offset = text.find("\n")
        while offset >= 0:
            end = text.find("\n", offset + 1)
            line = text[offset + 1 : end if end >= 0 else len(text)]
            if line.strip():
                if block is None:
                    block = _indent(line)
                elif _indent(line) < block:
                    return offset
            offset = end
        return None


def line_before(before: str) -> str:
    """The cursor's line up to the cursor, from the text before the cursor."""
    return before[before.rfind("\n") + 1 :]


def line_after(after: str) -> str:
    """The cursor's line from the cursor on, from the text after the cursor."""
    end = after.find("\n")
    return after if end < 0 else after[:end]


def line_before_cursor(document: str, offset: int) -> str:
    """`line_before(document[:offset])` without copying the text before the line."""
    return document[document.rfind("\n", 0, offset) + 1 : offset]


def line_after_cursor(document: str, offset: int) -> str:
    """`line_after(document[offset:])` without copying the text after the line."""
    end = document.find("\n", offset)
    return document[offset : len(document) if end < 0 else end]


def code_follows(line_after: str) -> bool:
    """Whether code follows the cursor on its line; closing brackets, quotes and separators that
    an editor auto-inserts do not count."""
    return bool(line_after.strip().strip(")]}>\"'`;:,"))


def rules_for_cursor(line_before: str, line_after: str, stop_strings: tuple[str, ...] = ()) -> StopRules:
    """Single-line when code follows the cursor on its line, multi-line otherwise."""
    if code_follows(line_after):
        return StopRules(single_line=True, stop_strings=stop_strings)
    in_leading_space = not line_before.strip()
    return StopRules(
        cursor_block_indent=len(line_before) if in_leading_space else None, stop_strings=stop_strings
    )
