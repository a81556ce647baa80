"""The server's copy of a document follows random incremental edits exactly (LSP line and UTF-16
column rules), checked against an independent model that works on UTF-16 code units."""

import array

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types
from pygls.workspace import PositionCodec

from fimls.lsp.document import LspTextDocument
from fimls.lsp.inline import SHAPES, inline_items

# Emoji (surrogate pairs), CJK, combining marks, every LSP line break, and characters that
# str.splitlines wrongly treats as line breaks.
PIECES = ["a", "Z", " ", "\t", "\n", "\r", "\r\n", "😀", "👍🏽", "中", "文", "e\u0301", "\u2028", "\x0c", "\x85", "\x1c"]
texts = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


class Utf16Model:
    """The document as the editor holds it: UTF-16 code units."""

    def __init__(self, text: str):
        self.units = list(memoryview(text.encode("utf-16-le")).cast("H"))

    def decode(self) -> str:
        return array.array("H", self.units).tobytes().decode("utf-16-le")

    def line_spans(self) -> list[tuple[int, int]]:
        spans, start, i = [], 0, 0
        while i < len(self.units):
            unit = self.units[i]
            if unit in (0x0A, 0x0D):
                width = 2 if unit == 0x0D and i + 1 < len(self.units) and self.units[i + 1] == 0x0A else 1
                spans.append((start, i))
                i += width
                start = i
            else:
                i += 1
        spans.append((start, len(self.units)))
        return spans

    def index(self, line: int, character: int) -> int:
        spans = self.line_spans()
        if line >= len(spans):
            return len(self.units)
        start, end = spans[line]
        at = min(start + character, end)
        if start < at < end and 0xDC00 <= self.units[at] <= 0xDFFF:
            at -= 1  # inside a surrogate pair: the character's start
        return at

    def position(self, line: int, character: int) -> types.Position:
        """The clamped position a correct server reports for (line, character)."""
        spans = self.line_spans()
        if line >= len(spans):
            line = len(spans) - 1
            return types.Position(line=line, character=spans[line][1] - spans[line][0])
        return types.Position(line=line, character=self.index(line, character) - spans[line][0])

    def edit(self, start: int, end: int, text: str) -> None:
        start, end = min(start, end), max(start, end)
        self.units[start:end] = list(memoryview(text.encode("utf-16-le")).cast("H"))


def positions(max_line: int = 12, max_character: int = 40):
    return st.tuples(st.integers(0, max_line), st.integers(0, max_character))


edits = st.lists(st.tuples(positions(), positions(), texts), min_size=1, max_size=25)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=texts, edits=edits)
def test_incremental_edits_keep_the_server_text_equal_to_the_editors(initial, edits):
    document = LspTextDocument("file:///w/a.py", initial, position_codec=PositionCodec())
    model = Utf16Model(initial)
    for (start_line, start_char), (end_line, end_char), text in edits:
        change = types.TextDocumentContentChangePartial(
            range=types.Range(types.Position(start_line, start_char), types.Position(end_line, end_char)), text=text
        )
        document.apply_change(change)
        model.edit(model.index(start_line, start_char), model.index(end_line, end_char), text)
        assert document.source == model.decode()
        # The line index the edit updated in place agrees with one scanned afresh.
        fresh = LspTextDocument("file:///w/a.py", document.source, position_codec=PositionCodec())
        assert document.line_count == fresh.line_count == len(model.line_spans())
        for line in range(document.line_count):
            for character in (0, 1, 10**6):
                position = types.Position(line, character)
                assert document.offset_at_position(position) == fresh.offset_at_position(position)


@settings(max_examples=300, deadline=None)
@given(text=texts, cursor=positions())
def test_completion_item_is_an_insertion_at_the_cursor_in_utf16(text, cursor):
    document = LspTextDocument("file:///w/a.py", text, position_codec=PositionCodec())
    model = Utf16Model(text)
    at = model.position(*cursor)
    start, _ = model.line_spans()[at.line]
    here = types.Position(line=at.line, character=at.character)
    # An unknown client: an empty range at the cursor (clamped to its line), the completion alone.
    [item] = inline_items(document, types.Position(*cursor), "XY")
    assert (item.range.start, item.range.end, item.insert_text) == (here, here, "XY")
    # VS Code: from the line's start to the cursor, the line up to the cursor and the completion.
    [item] = inline_items(document, types.Position(*cursor), "XY", shape=SHAPES["vscode"])
    before = Utf16Model("")
    before.units = model.units[start : start + at.character]
    assert (item.range.start, item.range.end) == (types.Position(line=at.line, character=0), here)
    assert item.insert_text == before.decode() + "XY"


def test_lines_break_only_where_lsp_says():
    document = LspTextDocument("file:///w/a.py", "a\u2028b\x0cc\r\nd\re\nf", position_codec=PositionCodec())
    assert document.lines == ("a\u2028b\x0cc\r\n", "d\r", "e\n", "f")
    assert document.offset_at_position(types.Position(0, 99)) == len("a\u2028b\x0cc")
    assert document.offset_at_position(types.Position(3, 1)) == len(document.source)


def test_an_edit_that_joins_or_splits_a_crlf_break_moves_the_line_starts():
    document = LspTextDocument("file:///w/a.py", "a\rb\nc", position_codec=PositionCodec())
    assert document.line_count == 3
    # "\n" typed right after a lone "\r": the two are now one break, and "b" starts a character later.
    document.apply_change(types.TextDocumentContentChangePartial(range=types.Range(types.Position(1, 0), types.Position(1, 0)), text="\n"))
    assert document.source == "a\r\nb\nc" and document.line_count == 3
    assert document.offset_at_position(types.Position(1, 0)) == 3
    # Deleting that "\n" splits nothing and leaves "\r" as the break.
    document.apply_change(types.TextDocumentContentChangePartial(range=types.Range(types.Position(0, 1), types.Position(1, 0)), text="\r"))
    assert document.source == "a\rb\nc" and document.offset_at_position(types.Position(1, 0)) == 2
