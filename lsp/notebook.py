"""A Jupyter notebook seen by the model as the script it stands for: its code cells in order, its
markdown cells as comments in the notebook's code language, one blank line between cells. A
completion in a cell then sees the cells before it as prefix and the cells after it as suffix,
within the same token budgets as any file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable
from urllib.parse import unquote

from lsprotocol import types

from fimls.context.languages import line_comment

CELL_SEPARATOR = "\n\n"


@dataclass(frozen=True)
class NotebookScript:
    uri: str  # the notebook's
    text: str  # the notebook as one script
    cell_start: int  # where the requested cell's text begins in `text`


def notebook_script(notebook: types.NotebookDocument, cell_document: Callable[[str], Any], cell_uri: str) -> NotebookScript | None:
    """The script of `notebook`, `cell_document(uri)` giving a cell's text document; None when
    `cell_uri` is not one of its code cells."""
    cells = {cell.document: document for cell in notebook.cells if (document := cell_document(cell.document)) is not None}
    code_language = next(
        (cells[c.document].language_id for c in notebook.cells if c.kind == types.NotebookCellKind.Code and c.document in cells),
        "python",
    )
    comment = line_comment(code_language)
    pieces: list[str] = []
    start = None
    length = 0
    for cell in notebook.cells:
        document = cells.get(cell.document)
        if document is None:
            continue
        if cell.kind == types.NotebookCellKind.Code:
            piece = document.source
            if unquote(cell.document) == unquote(cell_uri):
                start = length + (len(CELL_SEPARATOR) if pieces else 0)
        else:
            lines = document.source.splitlines() or [""]
            piece = "\n".join(f"{comment} {line}".rstrip() for line in lines)
        if pieces:
            length += len(CELL_SEPARATOR)
        pieces.append(piece)
        length += len(piece)
    if start is None:
        return None
    return NotebookScript(notebook.uri, CELL_SEPARATOR.join(pieces), start)
