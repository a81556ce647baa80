"""Open documents kept exactly as the client has them, with LSP's rules for lines and columns.

pygls' own TextDocument splits lines with `str.splitlines`, which also breaks at form feeds,
U+2028 and other characters that are not line breaks in LSP, and it clamps a column past the end
of the last line one character short. Either puts the server's copy out of step with the editor
after an incremental edit. Here a line ends only at `\\r\\n`, `\\r` or `\\n`; a column counts
the negotiated code units (UTF-16 unless the client chose otherwise) and a column past the end
of its line means the end of that line, as the specification says.
"""

from __future__ import annotations

import bisect
import re
from typing import Sequence

from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


class LspTextDocument(TextDocument):
    @property
    def lines(self) -> Sequence[str]:
        """Each line with its line break; no empty last line after a final break."""
        return tuple(_LINE.findall(self.source))

    def _line_spans(self) -> list[tuple[int, int]]:
        """(start, end of content) of every line, including the empty one after a final break."""
        spans, start = [], 0
        for line_break in _LINE_BREAK.finditer(self.source):
            spans.append((start, line_break.start()))
            start = line_break.end()
        spans.append((start, len(self.source)))
        return spans

    def offset_at_position(self, client_position: types.Position) -> int:
        """Code-point offset of a client position; past the last line is the end of the text."""
        spans = self._line_spans()
        if client_position.line < 0:
            return 0
        if client_position.line >= len(spans):
            return len(self.source)
        start, end = spans[client_position.line]
        units_for = self.position_codec.impl.code_units_for_char
        offset, units = start, 0
        while offset < end:
            width = units_for(self.source[offset])
            if units + width > client_position.character:
                break  # a column inside a surrogate pair rounds down to the character's start
            units += width
            offset += 1
        return offset

    def client_position_at_offset(self, offset: int) -> types.Position:
        line, (start, end) = self._line_at(offset)
        return types.Position(line=line, character=self.position_codec.client_num_units(self.source[start:min(offset, end)]))

    def line_start_offset(self, offset: int) -> int:
        """Offset of the start of the line holding `offset`."""
        return self._line_at(offset)[1][0]

    def _line_at(self, offset: int) -> tuple[int, tuple[int, int]]:
        offset = min(max(offset, 0), len(self.source))
        spans = self._line_spans()
        line = bisect.bisect_right([start for start, _ in spans], offset) - 1
        return line, spans[line]

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        start = self.offset_at_position(change.range.start)
        end = self.offset_at_position(change.range.end)
        start, end = min(start, end), max(start, end)
        self._source = self.source[:start] + change.text + self.source[end:]


class LspWorkspace(Workspace):
    """pygls' Workspace holding LspTextDocuments."""

    @classmethod
    def replacing(cls, workspace: Workspace) -> "LspWorkspace":
        return cls(
            workspace.root_uri,
            workspace._sync_kind,
            list(workspace.folders.values()),
            workspace.position_encoding,
        )

    def _create_text_document(
        self, doc_uri: str, source: str | None = None, version: int | None = None, language_id: str | None = None
    ) -> TextDocument:
        return LspTextDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self.position_codec,
        )
