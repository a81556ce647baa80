"""Completion text → `InlineCompletionItem`, as a plain function testable without a client."""

from __future__ import annotations

from lsprotocol import types

from fimls.lsp.document import LspTextDocument


def inline_items(
    document: LspTextDocument, position: types.Position, text: str, command: types.Command | None = None
) -> list[types.InlineCompletionItem]:
    """One item that replaces the cursor's whole line with itself, the completion inserted at the
    cursor.

    A replacement of the whole line (rather than an insertion at the cursor) is what VS Code and
    Copilot do: if the user deletes a character the item still matches. It runs to the line's end
    and keeps the text after the cursor, because Neovim 0.12 shows an item's range as an overlay:
    a range ending at the cursor with the rest of the line left out would hide that rest
    (neovim#33972). `command` runs when the user accepts the item (local acceptance counting).
    """
    if not text:
        return []
    offset = document.offset_at_position(position)  # clamped: a position past the end is never an error
    line = document.line_of(offset)
    line_start, line_end = document.line_span(line)
    return [
        types.InlineCompletionItem(
            insert_text=document.source[line_start:offset] + text + document.source[offset:line_end],
            range=types.Range(
                start=types.Position(line=line, character=0), end=document.client_position_at_offset(line_end)
            ),
            command=command,
        )
    ]
