"""What four LSP clients do with an inline completion item, each a small model written from the
client's own source: how the item is drawn (`show`: the lines the user sees around the cursor and
the part of them drawn as suggestion) and what accepting it does (`accept`: the document and the
cursor after). tests/test_client_shapes.py drives the real server with each client's `initialize`
and runs its items through these.

Only the paths an item from fimls can take are modelled (text items, no snippets, one cursor),
each step named after the code it follows. Documents are Python strings; positions are converted
with the position encoding the server chose from the client's list, as the client converts them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Shown:
    lines: list[str]  # the cursor's line as drawn, then any lines drawn below it for the suggestion
    suggestion: str  # the text drawn as suggestion (grey), its lines joined by "\n"


@dataclass(frozen=True)
class Accepted:
    text: str  # the document after accepting
    cursor: int  # offset of the cursor after accepting, in code points


# -- positions ----------------------------------------------------------------------------------

def _units(text: str, encoding: str) -> int:
    if encoding == "utf-16":
        return len(text.encode("utf-16-le", "surrogatepass")) // 2
    if encoding == "utf-8":
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text)


def line_bounds(text: str, offset: int) -> tuple[int, int]:
    start = text.rfind("\n", 0, offset) + 1
    end = text.find("\n", offset)
    return start, len(text) if end < 0 else end


def offset_of(text: str, position: dict, encoding: str) -> int:
    """The code-point offset of an LSP position (a column past the line's end is its end)."""
    start = 0
    for _ in range(position["line"]):
        start = text.index("\n", start) + 1
    end = line_bounds(text, start)[1]
    offset, units = start, 0
    while offset < end and units + _units(text[offset], encoding) <= position["character"]:
        units += _units(text[offset], encoding)
        offset += 1
    return offset


def _range(text: str, item: dict, encoding: str) -> tuple[int, int]:
    return offset_of(text, item["range"]["start"], encoding), offset_of(text, item["range"]["end"], encoding)


def _insert_text(item: dict) -> str:
    text = item["insertText"]
    return text if isinstance(text, str) else text["value"]


# -- VS Code ------------------------------------------------------------------------------------
# microsoft/vscode, src/vs/editor/contrib/inlineCompletions/browser/: model/singleTextEditHelpers.ts
# (singleTextRemoveCommonPrefix) at 1cf646cd38c3e1a6b678be3f3399ca169236abba,
# model/inlineCompletionIsVisible.ts at 073e168817edbb5fb785eaad16cec6232e4ab154,
# model/computeGhostText.ts at 2d77bf8faac5dc8cee43591b6f865bc74e5958ec (mode `subwordSmart`,
# editor.inlineSuggest.mode's default), view/ghostText/ghostTextView.ts
# (computeGhostTextViewData) at 0310f2ef28a04ab8698596d21082a35ebe85b628, and
# model/inlineCompletionsModel.ts `accept` (the cursor at the end of the edit less its common
# prefix and suffix; VS Code 1.91, the extension's oldest, put it at the end of the edit as sent).

def _common_prefix(a: str, b: str) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _minimized(text: str, start: int, end: int, insert: str) -> tuple[int, int, str]:
    """singleTextRemoveCommonPrefix."""
    insert = insert.replace("\r\n", "\n")
    common = _common_prefix(text[start:end], insert)
    return start + common, end, insert[common:]


def _indent_column(line: str) -> int:
    """getLineIndentColumn, 0-based: where the first character that is not white space is."""
    return len(line) - len(line.lstrip(" \t"))


def _is_subsequence(word: str, target: str) -> bool:
    """matchesSubString: `word`'s characters in order in `target`, case aside."""
    found = 0
    for char in target.lower():
        if found < len(word) and word[found].lower() == char:
            found += 1
    return found == len(word)


def vscode_visible(text: str, cursor: int, item: dict, encoding: str) -> bool:
    """inlineCompletionIsVisible."""
    start, end = _range(text, item, encoding)
    mstart, mend, mtext = _minimized(text, start, end, _insert_text(item))
    line_start, _ = line_bounds(text, cursor)
    if line_bounds(text, mstart)[0] != line_start or not mtext:
        return False
    original = text[mstart:mend]
    index = max(0, cursor - mstart)
    filter_before, filter_after = mtext[:index], mtext[index:]
    original_before, original_after = original[:index], original[index:]
    if mstart - line_start <= _indent_column(text[line_start:line_bounds(text, cursor)[1]]):
        original_before = original_before.lstrip()
        if not original_before:
            original_after = original_after.lstrip()
        filter_before = filter_before.lstrip()
        if not filter_before:
            filter_after = filter_after.lstrip()
    return filter_before.startswith(original_before) and _is_subsequence(original_after, filter_after)


def _diff(original: str, modified: str) -> list[tuple[int, int, int, int]]:
    """(originalStart, originalLength, modifiedStart, modifiedLength) of each change between the
    two, from a longest common subsequence (LcsDiff)."""
    n, m = len(original), len(modified)
    lcs = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            lcs[i][j] = lcs[i + 1][j + 1] + 1 if original[i] == modified[j] else max(lcs[i + 1][j], lcs[i][j + 1])
    changes, i, j = [], 0, 0
    current = None
    while i < n or j < m:
        if i < n and j < m and original[i] == modified[j]:
            if current:
                changes.append(tuple(current))
                current = None
            i, j = i + 1, j + 1
            continue
        if current is None:
            current = [i, 0, j, 0]
        if j < m and (i == n or lcs[i][j + 1] >= lcs[i + 1][j]):
            current[3] += 1
            j += 1
        else:
            current[1] += 1
            i += 1
    if current:
        changes.append(tuple(current))
    return changes


def vscode_show(text: str, cursor: int, item: dict, encoding: str) -> Shown | None:
    """computeGhostText (subwordSmart), then computeGhostTextViewData; None when VS Code shows
    nothing for the item."""
    if not vscode_visible(text, cursor, item, encoding):
        return None
    start, end = _range(text, item, encoding)
    mstart, mend, mtext = _minimized(text, start, end, _insert_text(item))
    line_start, line_end = line_bounds(text, mstart)
    if mend > line_end:
        return None  # the edit spans lines
    line = text[line_start:line_end]
    column = mstart - line_start
    indentation = _indent_column(line)
    if column <= indentation:  # suggestionTouchesIndentation
        replaced = line[column:indentation]
        added = len(mtext) - len(mtext.lstrip(" \t"))
        new_start = mstart + len(replaced) if mstart + len(replaced) <= mend else mend
        mtext = mtext[len(replaced):] if mtext.startswith(replaced) else mtext[added:]
        mstart = new_start
        column = mstart - line_start
    parts = []
    for o_start, o_length, m_start, m_length in _diff(text[mstart:mend], mtext):
        insert_column = column + o_start + o_length
        if insert_column < cursor - line_start or o_length > 0:
            return None  # ghost text before the cursor, or a deletion: not shown as ghost text
        if m_length:
            parts.append((insert_column, mtext[m_start:m_start + m_length]))
    if not parts:
        return None
    inline, additional, hidden_from, last = [], [], None, 0

    def add_to_additional(lines: list[str]) -> None:
        if additional:
            additional[-1] += lines[0]
            lines = lines[1:]
        additional.extend(lines)

    for insert_column, part in parts:
        part_lines = part.split("\n")
        if hidden_from is None:
            inline.append((insert_column, part_lines[0]))
            part_lines = part_lines[1:]
        else:
            add_to_additional([line[last:insert_column]])
        if part_lines:
            add_to_additional(part_lines)
            if hidden_from is None and insert_column < len(line):  # 1-based `part.column <= length`
                hidden_from = insert_column
        last = insert_column
    if hidden_from is not None:
        additional[-1] += line[last:]  # additionalLinesOriginalSuffix: the rest, after the last line
    drawn, previous = "", 0
    for insert_column, inline_text in inline:
        drawn += line[previous:insert_column] + inline_text
        previous = insert_column
    drawn += line[previous:hidden_from if hidden_from is not None else len(line)]
    return Shown([drawn, *additional], "".join(part for _, part in parts))


def vscode_accept(text: str, item: dict, encoding: str, minimal: bool = True) -> Accepted:
    start, end = _range(text, item, encoding)
    insert = _insert_text(item).replace("\r\n", "\n")
    after = text[:start] + insert + text[end:]
    if not minimal:
        return Accepted(after, start + len(insert))
    prefix = _common_prefix(text[start:end], insert)
    old, new = text[start + prefix:end], insert[prefix:]
    suffix = _common_prefix(old[::-1], new[::-1])
    return Accepted(after, start + prefix + len(new) - suffix)


# -- Neovim 0.12 ----------------------------------------------------------------------------------
# neovim/neovim runtime/lua/vim/lsp/inline_completion.lua at tag v0.12.4 (Debian's
# neovim-runtime 0.12.4-1): Completor:show (the item drawn from its range's start, the longest
# common prefix of the line there and the item's first line skipped, and at least everything
# before the cursor; `overlay` over a non-empty range, `inline` at an empty one) and
# Completor:accept (nvim_buf_set_text over the range, the cursor after the inserted text). Lines
# and columns are bytes.

def neovim_show(text: str, cursor: int, item: dict, encoding: str) -> Shown | None:
    start, end = _range(text, item, encoding)
    line_start, line_end = line_bounds(text, start)
    line = text[line_start:line_end].encode()
    col = len(text[line_start:start].encode())
    lines = [part.encode() for part in _insert_text(item).split("\n")]
    skip = _common_prefix(line[col:], lines[0]) + 1  # lcp: where the common prefix ends, exclusive, 1-based
    if line_bounds(text, cursor)[0] == line_start:
        skip = max(skip, len(text[line_start:cursor].encode()) - col + 1)
    virt = lines[0][skip - 1:]
    col += skip - 1
    if start != end:  # overlay: drawn over what is there
        drawn = line[:col] + virt + line[col + len(virt):]
    else:
        drawn = line[:col] + virt + line[col:]
    return Shown([drawn.decode(), *(part.decode() for part in lines[1:])], b"\n".join([virt, *lines[1:]]).decode())


def neovim_accept(text: str, item: dict, encoding: str) -> Accepted:
    start, end = _range(text, item, encoding)
    insert = _insert_text(item)
    # The cursor goes to {row + #lines - 1, (#lines == 1 and col or 0) + #lines[#lines]}: the end
    # of the inserted text.
    return Accepted(text[:start] + insert + text[end:], start + len(insert))


# -- LSP4IJ in IntelliJ -----------------------------------------------------------------------------
# redhat-developer/lsp4ij src/main/kotlin/com/redhat/devtools/lsp4ij/features/inlineCompletion/
# LSPInlineCompletionProvider.kt at a6c8ef95fd4429392d8ef1df161fab6ab78252d3 (a blank insertText
# is dropped; the part of insertText before the caret is cut off by length; caret..range end
# becomes an InlineCompletionSkipTextElement ahead of the grey InlineCompletionGrayTextElement),
# and JetBrains/intellij-community platform/platform-impl/src/com/intellij/codeInsight/inline/
# completion/InlineCompletionHandler.kt `insert` at 082af00c93d52bb8ba38a415ca17763a2df84246 (all
# elements' text inserted at the caret, the caret moved to its end) with
# DefaultInlineCompletionInsertHandler.afterInsertion (the skipped length deleted after the caret).
# IntelliJ documents are Java strings: offsets and lengths count UTF-16 units. Grey text is drawn
# where the elements before it end, its first line inline, the others as blocks below the line.

def _u16(text: str) -> list[int]:
    data = text.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(data[i:i + 2], "little") for i in range(0, len(data), 2)]


def _s16(units: list[int]) -> str:
    return b"".join(unit.to_bytes(2, "little") for unit in units).decode("utf-16-le", "surrogatepass")


def _lsp4ij_elements(text: str, cursor: int, item: dict, encoding: str) -> list[tuple[str, str]] | None:
    insert = _insert_text(item)
    if not insert.strip():
        return None  # insertText.isNullOrBlank(): no variant
    document = _u16(text)
    offset = len(_u16(text[:cursor]))
    start, end = (len(_u16(text[:o])) for o in _range(text, item, encoding))
    shown = _u16(insert)
    elements = []
    if start < offset <= end and offset - start < len(shown):
        shown = shown[offset - start:]
    if end > offset:
        elements.append(("skip", _s16(document[offset:end])))
    if shown:
        elements.append(("grey", _s16(shown)))
    return elements or None


def lsp4ij_show(text: str, cursor: int, item: dict, encoding: str) -> Shown | None:
    elements = _lsp4ij_elements(text, cursor, item, encoding)
    if elements is None:
        return None
    line_start, line_end = line_bounds(text, cursor)
    at = cursor + sum(len(part) for kind, part in elements if kind == "skip")
    grey = "".join(part for kind, part in elements if kind == "grey")
    grey_lines = grey.split("\n")
    return Shown([text[line_start:at] + grey_lines[0] + text[at:line_end], *grey_lines[1:]], grey)


def lsp4ij_accept(text: str, cursor: int, item: dict, encoding: str) -> Accepted:
    elements = _lsp4ij_elements(text, cursor, item, encoding)
    joined = "".join(part for _, part in elements)
    skipped = sum(len(_u16(part)) for kind, part in elements if kind == "skip")
    after = text[:cursor] + joined + text[cursor:]
    caret = cursor + len(joined)
    units = _u16(after)
    at = len(_u16(after[:caret]))
    after = _s16(units[:at] + units[at + skipped:])
    return Accepted(after, caret)


# -- lsp-mode ---------------------------------------------------------------------------------------
# emacs-lsp/lsp-mode lsp-inline-completion.el at 90bc0430f670c4da44e31c4fad1d2fb4a71dc909 (10.0.1):
# lsp-inline-completion-show-overlay (an overlay from the range's start, or the character before it
# at the end of a line, to the range's end, its `display` and `after-string` cut from the text
# there followed by insertText in the suggestion face) and lsp-inline-completion--insert-sugestion
# (the range deleted, insertText inserted at its start, point left at the end of the insertion).

def lsp_mode_show(text: str, cursor: int, item: dict, encoding: str) -> Shown | None:
    start, end = _range(text, item, encoding)
    insert = _insert_text(item)
    line_start, line_end = line_bounds(text, start)
    showing_at_eol = start != line_start and start == line_end
    beg = start - 1 if showing_at_eol else start
    end_point = end
    # The string drawn, character by character, with whether it is in the suggestion face.
    drawn = [(char, False) for char in text[beg:start]] + [(char, True) for char in insert]
    if insert.startswith(text[beg:cursor]):
        display, after = drawn[:cursor - beg], drawn[cursor - beg:]
    else:
        display, after = drawn[:1], drawn[1:]
    covered = text[beg:end_point]
    shown_chars = ([(char, False) for char in text[line_start:beg]]
                   + (display if covered else [(char, False) for char in covered]) + after
                   + [(char, False) for char in text[end_point:line_bounds(text, end_point)[1]]])
    lines = "".join(char for char, _ in shown_chars).split("\n")
    return Shown(lines, "".join(char for char, grey in shown_chars if grey))


def lsp_mode_accept(text: str, cursor: int, item: dict, encoding: str) -> Accepted:
    start, end = _range(text, item, encoding)
    insert = _insert_text(item)
    at = start if item.get("range") else cursor
    after = text[:at] + insert + text[end if start != end else at:]
    return Accepted(after, at + len(insert))
