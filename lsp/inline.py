"""Completion text → `InlineCompletionItem`, shaped for the client that asked, as plain functions
testable without a client.

Clients read an item's range and insertText differently (docs/clients.md has each one's
algorithm, from its source). One shape reads right in all of them for a completion on one line:
an empty range at the cursor whose insertText is only the new text, the plainest reading of the
specification (replace nothing, insert this). Where they part is a completion of several lines
typed in the middle of a line (before an auto-closed `)`): VS Code and lsp-mode draw the rest of
the line after the last suggested line, where it ends up; LSP4IJ and Neovim 0.12 draw it after the
first, so they get the first line only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from lsprotocol import types

from fimls.lsp.document import LspTextDocument

# `clientInfo.name` as LSP4IJ sends it: the IDE's full name and version ("PyCharm 2025.2.3");
# "LSP4IJ" itself appears nowhere in `initialize`.
JETBRAINS_IDES = (
    "IntelliJ IDEA", "PyCharm", "WebStorm", "GoLand", "CLion", "RustRover", "PhpStorm", "Rider", "RubyMine",
    "DataGrip", "DataSpell", "Android Studio", "Aqua", "AppCode", "MPS", "Writerside", "JetBrains",
)
# `vscode.env.appName` of VS Code and of the editors built from its source, which share its inline
# completion code.
VSCODE_NAMES = ("Visual Studio Code", "VSCodium", "Code - OSS", "Cursor", "Windsurf", "Positron")


@dataclass(frozen=True)
class ClientShape:
    """How items are shaped for one client."""

    name: str  # vscode, neovim (0.10/0.11: the fimls plugin draws), neovim-builtin (0.12+), lsp4ij, lsp-mode, other
    # The range runs from the line's start to the cursor and insertText repeats the line up to the
    # cursor: VS Code keeps such an item while the user types on through it (the range grows with
    # the typing) or deletes a character, and shows only what follows the common prefix.
    range_from_line_start: bool = False
    # The rest of the line is drawn after the suggestion's last line (where accepting puts it), so
    # a completion of several lines may be offered in the middle of a line.
    lines_before_rest: bool = True
    # Neovim 0.12's built-in skips the longest common prefix of the text after the range's start
    # and the item's first line before it draws the item: an insertion that begins with the
    # character after the cursor would be drawn shorter than it is.
    skips_common_prefix: bool = False


SHAPES = {
    "vscode": ClientShape("vscode", range_from_line_start=True),
    "neovim": ClientShape("neovim"),
    "neovim-builtin": ClientShape("neovim-builtin", lines_before_rest=False, skips_common_prefix=True),
    "lsp4ij": ClientShape("lsp4ij", lines_before_rest=False),
    "lsp-mode": ClientShape("lsp-mode"),
    "other": ClientShape("other"),
}


def client_shape(info: types.ClientInfo | None) -> ClientShape:
    """The shape for the client that `initialize` named (`clientInfo`)."""
    name = (info.name if info is not None else "") or ""
    version = (info.version if info is not None else "") or ""
    if any(name.startswith(known) for known in VSCODE_NAMES):
        return SHAPES["vscode"]
    if name == "Neovim":
        # Neovim 0.10 and 0.11 have no inline completion of their own: only the fimls plugin
        # shows items there, and it draws each line where it belongs.
        return SHAPES["neovim-builtin" if _major_minor(version) >= (0, 12) else "neovim"]
    if name == "emacs":  # lsp-mode (Eglot calls itself "Eglot")
        return SHAPES["lsp-mode"]
    if any(name.startswith(ide) for ide in JETBRAINS_IDES) or re.search(r"\(build [A-Z]{2,3}-\d", version):
        return SHAPES["lsp4ij"]
    return SHAPES["other"]


def _major_minor(version: str) -> tuple[int, int]:
    found = re.match(r"v?(\d+)\.(\d+)", version.strip())
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def inline_items(
    document: LspTextDocument, position: types.Position, text: str, command: types.Command | None = None,
    shape: ClientShape = SHAPES["other"],
) -> list[types.InlineCompletionItem]:
    """One item that inserts `text` at the cursor, shaped for `shape`'s client (none when that
    client cannot show it as it would be inserted). `command` runs when the user accepts it
    (local acceptance counting)."""
    offset = document.offset_at_position(position)  # clamped: a position past the end is never an error
    line = document.line_of(offset)
    line_start, line_end = document.line_span(line)
    rest = document.source[offset:line_end]
    if "\n" in text and rest.strip() and not shape.lines_before_rest:
        # The rest of the line would show after the first line, not after the last.
        text = text.split("\n", 1)[0].rstrip()
        if not text.strip():
            return []
    if not text:
        return []
    if shape.skips_common_prefix and rest and text.encode("utf-8", "surrogatepass")[:1] == rest.encode("utf-8", "surrogatepass")[:1]:
        # Its lcp runs on bytes: the item would be drawn without its first characters, and no
        # range draws the same insertion in full.
        return []
    cursor = document.client_position_at_offset(offset)
    if shape.range_from_line_start:
        start, insert = types.Position(line=line, character=0), document.source[line_start:offset] + text
    else:
        start, insert = cursor, text
    return [types.InlineCompletionItem(insert_text=insert, range=types.Range(start=start, end=cursor), command=command)]
