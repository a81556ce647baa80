"""Completion text → `InlineCompletionItem`, as a plain function testable without a client."""

from __future__ import annotations

from lsprotocol import types

from fimls.lsp.document import LspTextDocument


def inline_items(
    document: LspTextDocument, position: types.Position, text: str, command: types.Command | None = None
) -> list[types.InlineCompletionItem]:
    """One item that replaces the line's text before the cursor with itself plus the completion.

    A replacement from the start of the line (rather than an insertion at the cursor) is what
    VS Code prefers: if the user deletes a character the item still matches. `command` runs when
    the user accepts the item (local acceptance counting).
    """
    if not text:
        return []
    offset = document.offset_at_position(position)  # clamped: a position past the end is never an error
    line_start = document.line_start_offset(offset)
    end = document.client_position_at_offset(offset)
    return [
        types.InlineCompletionItem(
            insert_text=document.source[line_start:offset] + text,
            range=types.Range(start=types.Position(line=end.line, character=0), end=end),
            command=command,
        )
    ]
