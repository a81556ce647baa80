"""Jupyter notebooks over stdio, as VS Code sends them (notebookDocument/* with cells added,
removed, moved and edited): a completion in a code cell sees the notebook's other cells around it
(markdown cells as comments), and its item is in the cell's own coordinates."""

from pathlib import Path

import pytest

from conftest import run_fimls
from lsp_client import LspClient
from fimls.lsp.notebook import CELL_SEPARATOR
from model_inputs import CODE, CURSOR, shown_completion

pytestmark = pytest.mark.slow  # starts the server

MARKDOWN = "# Arithmetic\nSmall helpers."
CELL_A = "def add(a, b):\n    return a + b"
CELL_C = "print(mul(2, 3))"


def _cell(uri: str, text: str, language: str = "python") -> dict:
    return {"uri": uri, "languageId": language, "version": 1, "text": text}


def _expected(folder: Path, script: str, cursor: int) -> str:
    """What `fimls complete` says for the notebook written out as the script the model sees."""
    name = "analysis.ipynb"  # the notebook's name: the header the model sees
    (folder / name).write_text(script)
    line = script.count("\n", 0, cursor) + 1
    column = cursor - (script.rfind("\n", 0, cursor) + 1) + 1
    result = run_fimls("complete", f"{name}:{line}:{column}", "--model", str(_expected.model), "--device", "cpu",
                       "--max-new-tokens", "8", "--root", str(folder), cwd=folder)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.removesuffix("\n")


def _scripts(cell_b: str) -> list[str]:
    """The script the model sees for the notebook before and after its cells change."""
    return [CELL_SEPARATOR.join(["# # Arithmetic\n# Small helpers.", CELL_A, cell_b, CELL_C]),
            CELL_SEPARATOR.join(["total = 0\n" + CELL_C, "import math", CELL_A, cell_b])]


def _cell_the_model_completes(engine, folder: Path) -> str:
    """A cell B, ending at the cursor, that the local test model completes in both notebooks
    (chosen at run time: the model's weights differ from machine to machine)."""
    for document in CODE:
        cell_b = document[: document.index(CURSOR)]
        shown = []
        for script in _scripts(cell_b):
            (folder / "analysis.ipynb").write_text(script)
            cursor = script.index(cell_b) + len(cell_b)
            shown.append(shown_completion(engine, folder, "analysis.ipynb", script, cursor, maxNewTokens=8)[0])
        if all(text.strip() for text in shown):
            return cell_b
    raise AssertionError("the test model completes no candidate cell in both notebooks: not a reasonably trained test model")


def test_a_cell_sees_the_notebook_around_it_through_cell_changes(tmp_path, test_model_dir, engine):
    _expected.model = test_model_dir
    workspace = tmp_path / "ws"
    workspace.mkdir()
    compare = tmp_path / "compare"
    compare.mkdir()
    CELL_B = _cell_the_model_completes(engine, compare)
    notebook_uri = (workspace / "analysis.ipynb").as_uri()
    cell = {name: f"vscode-notebook-cell:{(workspace / 'analysis.ipynb').as_posix()}#{name}" for name in "mabcd"}
    client = LspClient(cwd=str(workspace))
    try:
        answer = client.call("initialize", {
            "processId": None, "rootUri": workspace.as_uri(), "capabilities": {"notebookDocument": {"synchronization": {}}},
            "initializationOptions": {"model": str(test_model_dir), "device": "cpu", "maxNewTokens": 8,
                                      "debounceMinMs": 0, "debounceMaxMs": 0, "cacheSize": 0},
        })
        selector = answer["result"]["capabilities"]["notebookDocumentSync"]["notebookSelector"]
        assert selector == [{"notebook": {"notebookType": "jupyter-notebook"}}]
        client.notify("initialized", {})
        assert client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"), timeout=300)["state"] == "ready"
        client.notify("notebookDocument/didOpen", {
            "notebookDocument": {"uri": notebook_uri, "notebookType": "jupyter-notebook", "version": 1, "cells": [
                {"kind": 1, "document": cell["m"]}, {"kind": 2, "document": cell["a"]},
                {"kind": 2, "document": cell["b"]}, {"kind": 2, "document": cell["c"]},
            ]},
            "cellTextDocuments": [_cell(cell["m"], MARKDOWN, "markdown"), _cell(cell["a"], CELL_A), _cell(cell["b"], CELL_B), _cell(cell["c"], CELL_C)],
        })
        lines = CELL_B.split("\n")
        position = {"line": len(lines) - 1, "character": len(lines[-1])}
        request = {"textDocument": {"uri": cell["b"]}, "position": position, "context": {"triggerKind": 2}}

        def complete():
            items = client.call("textDocument/inlineCompletion", request, timeout=120)["result"]
            assert len(items) <= 1
            return items

        # The model is shown the markdown cell as comments, the cell before, this cell, the cell after.
        script = _scripts(CELL_B)[0]
        cursor = script.index(CELL_B) + len(CELL_B)
        expected = _expected(compare, script, cursor)
        assert expected, "the test model completes this notebook; the comparison would prove nothing"
        [item] = complete()
        assert item["insertText"] == expected
        # In the cell's own coordinates: an insertion at the cursor, the end of its last line.
        assert item["range"] == {"start": position, "end": position}

        # A cell edited while a request is in flight: the request is answered, the edit is kept.
        pending = client.request("textDocument/inlineCompletion", request)
        client.notify("notebookDocument/didChange", {
            "notebookDocument": {"uri": notebook_uri, "version": 2},
            "change": {"cells": {"textContent": [{"document": {"uri": cell["c"], "version": 2}, "changes": [
                {"range": {"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 0}}, "text": "total = 0\n"},
            ]}]}},
        })
        assert "result" in client.wait_for([pending], timeout=120)[pending]
        # Then cells added (d before a), removed (the markdown) and moved (c to the front).
        client.notify("notebookDocument/didChange", {
            "notebookDocument": {"uri": notebook_uri, "version": 3},
            "change": {"cells": {"structure": {
                "array": {"start": 0, "deleteCount": 2, "cells": [{"kind": 2, "document": cell["d"]}, {"kind": 2, "document": cell["a"]}]},
                "didOpen": [_cell(cell["d"], "import math")], "didClose": [{"uri": cell["m"]}],
            }}},
        })
        client.notify("notebookDocument/didChange", {
            "notebookDocument": {"uri": notebook_uri, "version": 4},
            "change": {"cells": {"structure": {"array": {"start": 0, "deleteCount": 4, "cells": [
                {"kind": 2, "document": cell["c"]}, {"kind": 2, "document": cell["d"]},
                {"kind": 2, "document": cell["a"]}, {"kind": 2, "document": cell["b"]},
            ]}}}},
        })
        script = _scripts(CELL_B)[1]
        expected = _expected(compare, script, len(script))
        assert expected
        [item] = complete()
        assert item["insertText"] == expected
    finally:
        client.close()
