"""Open documents kept exactly as the client has them, with LSP's rules for lines and columns.

pygls' own TextDocument splits lines with `str.splitlines`, which also breaks at form feeds,
U+2028 and other characters that are not line breaks in LSP, and it clamps a column past the end
of the last line one character short. Either puts the server's copy out of step with the editor
after an incremental edit. Here a line ends only at `\\r\\n`, `\\r` or `\\n`; a column counts
the negotiated code units (UTF-16 unless the client chose otherwise) and a column past the end
of its line means the end of that line, as the specification says.

Positions are turned into offsets through an index of line starts that each incremental edit
updates where it changed (the lines around the edit are rescanned, the starts after it shifted),
so a keystroke in a 3 MB file costs what it changed, not a scan of the whole text.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy
from lsprotocol import types
from pygls.workspace import TextDocument, Workspace

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


class LspTextDocument(TextDocument):
    @property
    def lines(self) -> Sequence[str]:
        """Each line with its line break; no empty last line after a final break."""
        return tuple(_LINE.findall(self.source))

    _starts: numpy.ndarray | None = None  # start offset of every line, the empty one after a final break included
    _indexed: str | None = None  # the text `_starts` describes

    def _line_starts(self) -> numpy.ndarray:
        source = self.source
        if self._starts is None or self._indexed is not source:
            # A first look, or a text replaced whole (full sync): one scan.
            self._starts = _scan_starts(source, 0, len(source), [0])
            self._indexed = source
        return self._starts

    def line_span(self, line: int) -> tuple[int, int]:
        """(start, end of content) of a line that exists."""
        starts = self._line_starts()
        start = int(starts[line])
        if line + 1 == len(starts):
            return start, len(self.source)
        end = int(starts[line + 1])
        source = self.source
        end -= 2 if source[end - 2 : end] == "\r\n" else 1
        return start, end

    @property
    def line_count(self) -> int:
        return len(self._line_starts())

    def offset_at_position(self, client_position: types.Position) -> int:
        """Code-point offset of a client position; past the last line is the end of the text."""
        if client_position.line < 0:
            return 0
        if client_position.line >= self.line_count:
            return len(self.source)
        start, end = self.line_span(client_position.line)
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
        line = self.line_of(offset)
        start, end = self.line_span(line)
        offset = min(max(offset, 0), len(self.source))
        return types.Position(line=line, character=self.position_codec.client_num_units(self.source[start:min(offset, end)]))

    def line_of(self, offset: int) -> int:
        """The line (LSP's count) holding code-point `offset`, clamped to the text."""
        offset = min(max(offset, 0), len(self.source))
        return int(numpy.searchsorted(self._line_starts(), offset, side="right")) - 1

    def _apply_incremental_change(self, change: types.TextDocumentContentChangePartial) -> None:
        start = self.offset_at_position(change.range.start)
        end = self.offset_at_position(change.range.end)
        start, end = min(start, end), max(start, end)
        starts = self._line_starts()
        source = self.source[:start] + change.text + self.source[end:]
        # Rescan from the line before the edit to the line after it: a break can join or split
        # across the edit's edges (`\r` + inserted `\n`), never beyond a line untouched on each side.
        first = max(0, self.line_of(start) - 1)
        last = self.line_of(end) + 1
        delta = len(change.text) - (end - start)
        tail = starts[last + 1 :] + delta if last + 1 < len(starts) else starts[:0]
        region_end = int(tail[0]) if len(tail) else len(source)
        inner = _scan_starts(source, int(starts[first]), region_end, [])
        if len(tail) and len(inner) and inner[-1] == region_end:
            inner = inner[:-1]  # the line after the region begins where it did, shifted
        self._source = source
        self._starts = numpy.concatenate((starts[: first + 1], inner, tail))
        self._indexed = source


def _scan_starts(source: str, start: int, end: int, first: list[int]) -> numpy.ndarray:
    """`first` and the offsets that follow each line break in `source[start:end]`."""
    found = first + [match.end() for match in _LINE_BREAK.finditer(source, start, end)]
    return numpy.array(found, dtype=numpy.int64)


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
