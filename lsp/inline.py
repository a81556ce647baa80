"""Completion text → `InlineCompletionItem`, as a plain function testable without a client."""

from __future__ import annotations

from lsprotocol import types
from pygls.workspace import TextDocument


def cursor_offset(document: TextDocument, position: types.Position) -> int:
    """Code-point offset of a client position (UTF-16 columns unless negotiated otherwise),
    clamped to the document so a position past the end means its end, not an error."""
    lines = document.lines
    if position.line >= len(lines):
        return len(document.source)
    line = max(position.line, 0)
    clamped = types.Position(line=line, character=max(position.character, 0))
    offset = document.offset_at_position(clamped)
    line_start = sum(len(x) for x in lines[:line])
    line_end = line_start + len(lines[line].rstrip("\r\n"))
    return min(offset, line_end)


def inline_items(
    document: TextDocument, position: types.Position, text: str, command: types.Command | None = None
) -> list[types.InlineCompletionItem]:
    """One item that replaces the line's text before the cursor with itself plus the completion.

    A replacement from the start of the line (rather than an insertion at the cursor) is what
    VS Code prefers: if the user deletes a character the item still matches. `command` runs when
    the user accepts the item (local acceptance counting).
    """
    if not text:
        return []
    offset = cursor_offset(document, position)
    line_start = document.source.rfind("\n", 0, offset) + 1
    start = types.Position(line=document.client_position_at_offset(line_start).line, character=0)
    end = document.client_position_at_offset(offset)
    return [
        types.InlineCompletionItem(
            insert_text=document.source[line_start:offset] + text,
            range=types.Range(start=start, end=end),
            command=command,
        )
    ]
