"""Items shaped for the client that asked, checked against each client's own algorithm
(tests/client_models.py): the real server over stdio, initialized as VS Code, Neovim 0.12,
LSP4IJ (IntelliJ) and lsp-mode initialize it, serving a completion the test knows (an
OpenAI-compatible stand-in behind the `server` backend answers every prompt with it). In each
client, accepting the item must insert the completion at the cursor, keep the rest of the line
once, leave the cursor right after the completion, and the suggestion drawn must be the new text
alone."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import pytest

import client_models as models
from fixed_completion_server import FixedCompletionServer
from lsp_client import PROMPT_SETTINGS, LspClient

CURSOR = "|"


@dataclass(frozen=True)
class Client:
    client_info: dict | None
    capabilities: dict
    show: Callable | None  # (text, cursor, item, encoding) -> Shown | None
    accept: Callable | None  # (text, cursor, item, encoding) -> Accepted
    lines_before_rest: bool = True  # a completion of several lines may be offered in the middle of a line
    draws_common_prefix: bool = True  # False: Neovim 0.12 skips what the item shares with the line


def _capabilities(*encodings: str) -> dict:
    return {
        "general": {"positionEncodings": list(encodings)},
        "workspace": {"configuration": True, "workspaceFolders": True},
        "textDocument": {"inlineCompletion": {"dynamicRegistration": True}},
    }


# Each client's `initialize`, from its source: vscode-languageclient 11 (clientInfo from
# vscode.env.appName and vscode.version, positionEncodings ['utf-16']); Neovim's
# runtime/lua/vim/lsp/client.lua and protocol.lua (name 'Neovim', version tostring(vim.version()),
# utf-8 first); LSP4IJ's IntelliJPlatformUtils.getClientInfo (the IDE's full name, its version and
# build) and ClientCapabilitiesFactory (utf-16); lsp-mode.el (name "emacs", utf-32 first).
CLIENTS = {
    "vscode": Client(
        {"name": "Visual Studio Code", "version": "1.105.1"}, _capabilities("utf-16"),
        models.vscode_show, lambda text, cursor, item, encoding: models.vscode_accept(text, item, encoding),
    ),
    "neovim-0.12": Client(
        {"name": "Neovim", "version": "0.12.4"}, _capabilities("utf-8", "utf-16", "utf-32"),
        models.neovim_show, lambda text, cursor, item, encoding: models.neovim_accept(text, item, encoding),
        lines_before_rest=False, draws_common_prefix=False,
    ),
    "lsp4ij": Client(
        {"name": "PyCharm 2025.2.3", "version": "PyCharm 2025.2.3 (build PY-252.27397.106)"}, _capabilities("utf-16"),
        models.lsp4ij_show, models.lsp4ij_accept, lines_before_rest=False,
    ),
    "lsp-mode": Client(
        {"name": "emacs", "version": "GNU Emacs 30.1"}, _capabilities("utf-32", "utf-8", "utf-16"),
        models.lsp_mode_show, models.lsp_mode_accept,
    ),
    # No clientInfo: the plainest reading of the specification (replace the range with
    # insertText, the cursor after it), which Neovim's accept also is.
    "unknown": Client(
        None, {"textDocument": {"inlineCompletion": {}}},
        None, lambda text, cursor, item, encoding: models.neovim_accept(text, item, encoding),
    ),
}


@dataclass(frozen=True)
class Case:
    document: str  # with CURSOR where the cursor is
    completion: str  # what the stand-in model writes there, and the server serves unchanged


CASES = {
    "end of line": Case("def greet(name):\n    return |\n", "name.upper()"),
    "before an auto-closed paren": Case("def greet(name):\n    print(|)\n", "name"),
    "before a quote and bracket": Case('config = {"a": 1}\nvalue = config["|"]\n', "a"),
    "after non-ascii text": Case('greeting = "héllo wörld 😀"\nprint(greeting, "😀 é", |)\n', "end='!'"),
    "multi-line in the middle of a line": Case("def f():\n    result = compute(|)\n", "first,\n        second,"),
    "starting like the rest of the line": Case("x = a| + 1\n", " * b"),
}


@pytest.fixture(scope="module")
def fixed():
    server = FixedCompletionServer()
    yield server
    server.close()


@pytest.fixture(scope="module", params=sorted(CLIENTS))
def session(request, fixed, test_model_dir, tmp_path_factory):
    name = request.param
    client_spec = CLIENTS[name]
    workspace = tmp_path_factory.mktemp(f"shapes-{name}")
    client = LspClient(cwd=str(workspace))
    params = {
        "processId": None, "rootUri": workspace.as_uri(), "capabilities": client_spec.capabilities,
        "workspaceFolders": [{"uri": workspace.as_uri(), "name": workspace.name}],
        "initializationOptions": {**PROMPT_SETTINGS, "model": str(test_model_dir), "backend": "server", "serverUrl": fixed.url},
    }
    if client_spec.client_info is not None:
        params["clientInfo"] = client_spec.client_info
    try:
        answer = client.call("initialize", params)
        client.encoding = answer["result"]["capabilities"].get("positionEncoding", "utf-16")
        client.notify("initialized", {})
        ready = client.wait_for_notification("fimls/status", lambda p: p["state"] in ("ready", "error"))
        assert ready["state"] == "ready", ready
        client.workspace, client.name, client.opened = workspace, name, 0
        yield client
    finally:
        client.close()


def _items(client: LspClient, fixed: FixedCompletionServer, case: Case) -> tuple[str, int, list[dict]]:
    text, cursor = case.document.replace(CURSOR, ""), case.document.index(CURSOR)
    fixed.text = case.completion
    client.opened += 1
    uri = (client.workspace / f"case{client.opened}.py").as_uri()
    client.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "python", "version": 1, "text": text}})
    line_start = text.rfind("\n", 0, cursor) + 1
    position = {"line": text.count("\n", 0, cursor), "character": models._units(text[line_start:cursor], client.encoding)}
    answer = client.call("textDocument/inlineCompletion", {
        "textDocument": {"uri": uri}, "position": position, "context": {"triggerKind": 2},
    }, timeout=60)
    return text, cursor, answer["result"]


@pytest.mark.parametrize("case_name", sorted(CASES))
def test_accepting_inserts_the_completion_at_the_cursor_and_shows_only_new_text(session, fixed, case_name):
    client = CLIENTS[session.name]
    case = CASES[case_name]
    text, cursor, items = _items(session, fixed, case)
    line_end = text.find("\n", cursor)
    rest = text[cursor:line_end]
    expected = case.completion
    if "\n" in expected and rest.strip() and not client.lines_before_rest:
        expected = expected.split("\n", 1)[0].rstrip()  # this client draws the rest after the first line
    if not client.draws_common_prefix and expected.encode()[:1] == rest.encode()[:1]:
        assert items == [], "an item this client would draw without its first characters"
        return
    if not expected.strip():
        assert items == []
        return
    assert len(items) == 1, items
    item = items[0]

    accepted = client.accept(text, cursor, item, session.encoding)
    assert accepted.text == text[:cursor] + expected + text[cursor:]  # the rest of the line kept once
    assert accepted.cursor == cursor + len(expected)  # right after the completion
    if session.name == "vscode":  # VS Code 1.91 put the cursor at the end of the edit as sent
        assert models.vscode_accept(text, item, session.encoding, minimal=False).cursor == cursor + len(expected)

    if client.show is None:  # a client of no known algorithm: the plainest item
        assert item["insertText"] == expected
        assert item["range"]["start"] == item["range"]["end"]
        return
    shown = client.show(text, cursor, item, session.encoding)
    assert shown is not None, f"{session.name} would not show {item}"
    assert shown.suggestion == expected  # only the new text is drawn as suggestion
    # What is drawn reads as the document will after accepting: the cursor's line and the lines below.
    line_start = text.rfind("\n", 0, cursor) + 1
    after = accepted.text[line_start:].split("\n")
    assert shown.lines == after[: len(shown.lines)]
    assert len(shown.lines) == expected.count("\n") + 1


def test_the_shape_follows_the_client_that_asked():
    """How `initialize` names the client decides the shape, without a server."""
    from lsprotocol import types

    from fimls.lsp.inline import client_shape

    def named(name, version=None):
        return client_shape(types.ClientInfo(name=name, version=version))

    assert named("Visual Studio Code", "1.105.1").name == "vscode"
    assert named("Cursor", "1.7.0").name == "vscode"
    assert named("Neovim", "0.12.4").name == "neovim-builtin"
    assert named("Neovim", "0.13.0-dev-1234+gabcdef").name == "neovim-builtin"
    assert named("Neovim", "0.11.4").name == "neovim"  # only the fimls plugin shows items there
    assert named("emacs", "GNU Emacs 30.1").name == "lsp-mode"
    assert named("IntelliJ IDEA 2025.2.3", "IntelliJ IDEA (build IU-252.26830.84)").name == "lsp4ij"
    assert named("Android Studio Narwhal", "2025.1.1 (build AI-251.25410.109)").name == "lsp4ij"
    assert named("Eglot").name == "other"
    assert client_shape(None).name == "other"
